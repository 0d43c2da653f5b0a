"""What a build's bytes depend on, recorded so that ``build --resume`` can tell a killed
build of the same inputs from one of other inputs.

A fingerprint holds the campaign's settings, the options that change what is written
(``as_of``, format, ``--limit``, ``--sample``, ``--winner``, ``--exclude``, ``--refit``),
mailsmith's version, and the size and modification time of every file the build reads
before or while it renders: the campaign file, profiles, events, suppression list,
segments file, saved cluster models, the manifests ``--exclude`` names, the coupon pool
and its ``used`` manifests, and every file in the template and block folders. It leaves
out what does not change a byte: the number of workers, ``--force``, ``--strict``,
``--no-check``, and ``--baseline`` (it only feeds the summary, which a resumed build
computes again).

Files are compared by size and modification time (nanoseconds), not by content: hashing a
profile file of ten million rows would cost as much as reading it. A file replaced by
one of the same size and time (a copy that keeps times, ``cp -p``) goes unnoticed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from renderer.build.folder import MARKER
from renderer.campaign import Campaign
from renderer.coupons import coupon_files
from renderer.specs import cluster_model_path, content_folders


def build_fingerprint(
    campaign: Campaign,
    *,
    as_of: datetime,
    as_of_given: bool,
    options: Mapping[str, Any],
    out: Path,
) -> dict[str, Any]:
    """The fingerprint of a build (JSON-ready). ``as_of_given``: the time came from the
    campaign or ``--as-of``, not the clock; ``options`` are the build's byte-changing
    options; ``out`` (the output folder) is left out of the folders walked."""
    fingerprint = {
        "fingerprint": 1,
        "mailsmith": _version(),
        "as_of": as_of.isoformat(),
        "as_of_given": as_of_given,
        "options": dict(options),
        "campaign": campaign.model_dump(mode="json", by_alias=True),
        "base_dir": str(campaign.base_dir.resolve()),
        "files": {str(path): _stamp(path) for path in _read_files(campaign, options, out)},
    }
    # as the journal gives it back: tuples become lists, dates strings
    loaded: dict[str, Any] = json.loads(json.dumps(fingerprint, default=str))
    return loaded


def fingerprint_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """How ``current`` differs from ``stored``, one phrase each (empty: the same build).

    A time taken from the clock (no ``as_of`` in the campaign nor ``--as-of``) is not a
    difference: the resumed build takes the killed build's.
    """
    found = []
    if stored.get("fingerprint") != current["fingerprint"]:
        return ["the killed build was made by another version of mailsmith"]
    if stored["mailsmith"] != current["mailsmith"]:
        found.append(
            f"mailsmith's version changed ({stored['mailsmith']} to {current['mailsmith']})"
        )
    floating = not stored["as_of_given"] and not current["as_of_given"]
    if not floating and stored["as_of"] != current["as_of"]:
        found.append(f"as_of changed ({stored['as_of']} to {current['as_of']})")
    options, now = stored["options"], current["options"]
    for name in sorted(set(options) | set(now)):
        if options.get(name) != now.get(name):
            found.append(f"option {name} changed")
    settings, now = stored["campaign"], current["campaign"]
    changed = sorted(k for k in set(settings) | set(now) if settings.get(k) != now.get(k))
    if changed or stored["base_dir"] != current["base_dir"]:
        keys = f" ({', '.join(changed)})" if changed else ""
        found.append(f"the campaign's settings changed{keys}")
    found.extend(_file_changes(stored["files"], current["files"]))
    return found


def _file_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    changed = []
    for path in sorted(set(stored) | set(current)):
        before, after = stored.get(path), current.get(path)
        if before == after:
            continue
        if before is None:
            changed.append(f"{path} was added")
        elif after is None:
            changed.append(f"{path} was removed")
        else:
            changed.append(f"{path} changed")
    shown = changed[:5]
    if len(changed) > 5:
        shown.append(f"{len(changed) - 5} more files changed")
    return shown


def _read_files(campaign: Campaign, options: Mapping[str, Any], out: Path) -> Iterator[Path]:
    """Every file the build reads before or while rendering (see the module docstring)."""
    own = Path(campaign.file)
    if own.is_file():
        yield own
    # a database source has no file: its url, query or table are in the campaign part
    # (the rows themselves cannot be stamped; docs/scale.md, "Resume")
    if not campaign.profiles.is_sql:
        yield campaign.path(campaign.profiles.path)
    for spec in (campaign.events, campaign.suppression):
        if spec is not None and not getattr(spec, "is_sql", False):
            yield campaign.path(spec.path)
    if isinstance(campaign.segments, str):
        yield campaign.path(campaign.segments)
    if not options.get("refit"):  # refitted, the models follow from the profiles and events
        yield cluster_model_path(campaign)
    for manifest in options.get("exclude", []):
        yield Path(manifest)
    yield from coupon_files(campaign.coupons, campaign.base_dir)
    folders = content_folders(campaign)
    for folder in dict.fromkeys([*folders.templates, *folders.blocks]):
        yield from _content_files(folder, out.resolve())


def _content_files(folder: Path, out: Path) -> Iterator[Path]:
    """The files under a template or block folder, but not builds in it (a campaign's own
    folder may hold its output folder), nor hidden files and folders (staging folders),
    nor Python caches. The profiles and events files are stamped twice: no harm."""
    for root, folders, files in os.walk(folder):
        here = Path(root)
        folders[:] = sorted(
            name
            for name in folders
            if not name.startswith(".")
            and name != "__pycache__"
            and (here / name).resolve() != out
            and not (here / name / MARKER).exists()
        )
        for name in sorted(files):
            if not name.startswith("."):
                yield here / name


def _stamp(path: Path) -> list[int] | None:
    """Size and modification time (ns); None: no such file."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _version() -> str:
    try:
        return version("mailsmith")
    except PackageNotFoundError:
        return "unknown"
