"""``mailsmith snapshot``: render the campaign's cases and compare them with the stored
snapshots, or (``update``) write them; ``prune`` removes snapshots no case makes.

:func:`snapshot` returns a :class:`SnapshotReport`: new, changed (with a unified
diff) and orphaned files, what was written and removed, and with ``visual`` the
screenshots that changed (with a diff image and one HTML report showing the
stored and new screenshots and their difference side by side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from renderer.campaign import Campaign
from renderer.snapshots.cases import SnapshotCase, collect_cases
from renderer.snapshots.store import (
    FileChange,
    case_stem,
    compare_files,
    orphans,
    remove_files,
    snapshot_folder,
    write_file,
)

SNAPSHOTS_DIFFER = 9  # the exit code of `mailsmith snapshot` when anything differs


@dataclass(frozen=True)
class SnapshotOptions:
    """What :func:`snapshot` does: ``update`` writes new and changed snapshots,
    ``prune`` removes orphaned ones, ``profiles`` adds real profiles (by id) to the
    personas, ``visual`` compares screenshots too (``tolerance``: the share of pixels
    that may differ), ``report`` is the folder of the visual report."""

    update: bool = False
    prune: bool = False
    profiles: tuple[str, ...] = ()
    as_of: datetime | None = None
    visual: bool = False
    tolerance: float | None = None
    report: Path | None = None


@dataclass(frozen=True)
class VisualChange:
    """A screenshot (``path`` in the snapshot folder) that is new or changed."""

    path: str
    new: bool
    share: float = 0.0
    pixels: int = 0
    resized: bool = False

    def describe(self) -> str:
        if self.new:
            return "new"
        return "size changed" if self.resized else f"{self.pixels} pixels differ ({self.share:.4%})"


@dataclass
class SnapshotReport:
    """What :func:`snapshot` found and did, paths relative to ``folder``."""

    campaign: str
    folder: Path
    cases: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    changed: list[FileChange] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    visual: list[VisualChange] = field(default_factory=list)
    visual_report: Path | None = None
    updated: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        """True when a stored snapshot is missing, different or orphaned and this run did
        not write or remove it: `mailsmith snapshot` then exits with SNAPSHOTS_DIFFER."""
        if self.updated:
            return False
        left = set(self.orphaned) - set(self.removed)
        return bool(self.new or self.changed or left or self.visual)

    def lines(self) -> list[str]:
        """The report as a terminal shows it: each new, changed (with its diff), orphaned
        and visually changed snapshot, then one summary line."""
        verb = "written" if self.updated else "new"
        out = [f"{verb}: {path}" for path in self.new]
        for change in self.changed:
            out.append(f"{'updated' if self.updated else 'changed'}: {change.path}")
            out.extend(change.diff.rstrip("\n").split("\n"))
        for path in self.orphaned:
            out.append(f"{'removed' if path in self.removed else 'orphaned'}: {path}")
        out.extend(f"visual: {shot.path}: {shot.describe()}" for shot in self.visual)
        if self.visual_report is not None:
            out.append(f"visual report: {self.visual_report}")
        out.append(self.summary())
        return out

    def summary(self) -> str:
        """One line: how many cases, and what differs or was written."""
        counts = [
            f"{len(self.new)} new",
            f"{len(self.changed)} changed",
            f"{len(set(self.orphaned) - set(self.removed))} orphaned",
        ]
        if self.visual:
            counts.append(f"{len(self.visual)} screenshots differ")
        text = f"{self.campaign}: {len(self.cases)} snapshots, " + ", ".join(counts)
        if self.written or self.removed:
            text += f"; {len(self.written)} files written, {len(self.removed)} removed"
        return text + f" (in {self.folder})"


def snapshot(campaign: Campaign, options: SnapshotOptions | None = None) -> SnapshotReport:
    """Compare (or with ``update`` write) every persona x variant snapshot of ``campaign``."""
    options = options or SnapshotOptions()
    folder = snapshot_folder(campaign)
    report = SnapshotReport(campaign.name, folder, updated=options.update)
    if campaign.as_of is None and options.as_of is None:
        report.warnings.append(
            "the campaign has no as_of: date windows and features move with the clock, "
            "so snapshots will change by themselves (set as_of, or pass --as-of)"
        )
    cases = collect_cases(campaign, profiles=options.profiles, as_of=options.as_of)
    if not cases:
        report.warnings.append("nothing to snapshot: add `fixtures:` to the campaign")
    files = case_files(cases)
    report.cases = [case_stem(c.name, c.variant) for c in cases]
    report.new, report.changed = compare_files(folder, files)
    report.orphaned = orphans(folder, report.cases)
    if options.visual:
        from renderer.snapshots.visual import compare_screenshots

        htmls = {case_stem(c.name, c.variant): c.rendered.html for c in cases}
        compare_screenshots(htmls, report, options)
    if options.update:
        for path in [*report.new, *(c.path for c in report.changed)]:
            if write_file(folder, path, files[path]):
                report.written.append(path)
    if options.prune:
        report.removed = remove_files(folder, report.orphaned)
    return report


def case_files(cases: list[SnapshotCase]) -> dict[str, str]:
    """Every snapshot file of ``cases``: relative path to text."""
    return {
        f"{case_stem(case.name, case.variant)}{suffix}": text
        for case in cases
        for suffix, text in case.files().items()
    }
