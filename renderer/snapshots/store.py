"""The snapshot files on disk: where they live, comparing, writing and pruning them.

Beside the campaign file::

    __snapshots__/<campaign>/<persona>/<variant key>.html   normalized HTML
                                                  .txt    the text part
                                                  .json   subject, preheader, segments, blocks
                                                  .600.png, .375.png   with --visual

Files are written as UTF-8 with ``\\n`` line ends, and only when their content
changes, so the same inputs leave the same bytes (and the same modification times).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from renderer.campaign import Campaign
from segments.errors import OutputError

SNAPSHOT_DIR = "__snapshots__"
TEXT_SUFFIXES = (".html", ".txt", ".json")
PNG_SUFFIXES = (".600.png", ".375.png")


@dataclass(frozen=True)
class FileChange:
    """A snapshot file whose content differs: its path in the snapshot folder and a
    unified diff from the stored content to the new one."""

    path: str
    diff: str


def snapshot_folder(campaign: Campaign) -> Path:
    """``__snapshots__/<campaign name>`` beside the campaign file."""
    own = Path(campaign.file)
    base = own.parent if own.is_file() else campaign.base_dir
    return base / SNAPSHOT_DIR / campaign.name


def case_stem(name: str, variant: str) -> str:
    """The path of a case's files in the snapshot folder, without suffix."""
    return f"{name}/{variant}"


def stem_of(path: str) -> str | None:
    """The case stem of a snapshot file's relative path; None for a file that is not one."""
    for suffix in (*TEXT_SUFFIXES, *PNG_SUFFIXES):
        if path.endswith(suffix) and path.count("/") == 1:
            return path[: -len(suffix)]
    return None


def read_text(path: Path) -> str | None:
    """A stored snapshot file's text, None when there is none."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot read the snapshot: {exc.strerror}", file=str(path)) from None


def unified_diff(path: str, before: str, after: str) -> str:
    """The change from the stored text to the new one, as ``diff -u`` shows it."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"stored/{path}",
        f"rendered/{path}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare_files(folder: Path, files: Mapping[str, str]) -> tuple[list[str], list[FileChange]]:
    """The ``files`` (relative path to text) missing from ``folder``, and those that differ."""
    new: list[str] = []
    changed: list[FileChange] = []
    for path, text in files.items():
        stored = read_text(folder / path)
        if stored is None:
            new.append(path)
        elif stored != text:
            changed.append(FileChange(path, unified_diff(path, stored, text)))
    return new, changed


def orphans(folder: Path, stems: Iterable[str]) -> list[str]:
    """Files in ``folder`` that belong to no current case (or are no snapshot at all)."""
    if not folder.is_dir():
        return []
    wanted = set(stems)
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if stem_of(relative) not in wanted:
            found.append(relative)
    return found


def write_file(folder: Path, relative: str, content: str | bytes) -> bool:
    """Write one snapshot file unless it holds ``content`` already; True when written."""
    path = folder / relative
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if path.is_file() and path.read_bytes() == data:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise OutputError(
            f"cannot write the snapshot: {exc.strerror or exc}", file=str(path)
        ) from None
    return True


def remove_files(folder: Path, relatives: Iterable[str]) -> list[str]:
    """Delete these snapshot files, then the persona folders left empty."""
    removed = []
    for relative in relatives:
        path = folder / relative
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutputError(
                f"cannot remove the snapshot: {exc.strerror or exc}", file=str(path)
            ) from None
        removed.append(relative)
        if path.parent != folder and not any(path.parent.iterdir()):
            path.parent.rmdir()
    return removed
