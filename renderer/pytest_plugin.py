"""mailsmith's pytest plugin: a project's test run checks its emails with no test code.

Installed with mailsmith (entry point ``pytest11``), it reads the campaigns to check
from ``pyproject.toml``::

    [tool.mailsmith]
    campaigns = ["emails/welcome.yaml", "emails/weekly.yaml"]

or from ``--mailsmith-campaign PATH`` (repeatable), and adds one test item per
persona x variant of each (``mailsmith::<campaign>::<persona>[<variant>]``): it
renders the email as ``mailsmith snapshot`` does and compares it with the stored
snapshot files; a difference fails with the unified diff. One more item per
campaign fails on orphaned snapshots, and ``mailsmith check`` runs over each campaign:
one failing item per error it finds (``check[rule:file:line]``), or one passing
``check`` item when there is none. ``--snapshot-update`` (syrupy's flag, shared
when syrupy is installed) writes new and changed snapshots and removes orphans;
``--mailsmith-update`` does the same where syrupy is installed but not loaded.
Items carry the ``mailsmith`` marker: ``-m "not mailsmith"`` leaves them out.

It also offers the fixture ``email_snapshot``: syrupy's ``snapshot`` with
:class:`renderer.snapshots.syrupy_ext.EmailSnapshotExtension`, for tests that
render an email themselves. Nothing heavy is imported until an item runs.
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from renderer.snapshots.cases import SnapshotCase

MARKER = "mailsmith"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailsmith", "mailsmith email snapshots")
    group.addoption(
        "--mailsmith-campaign",
        action="append",
        default=[],
        metavar="PATH",
        help="campaign file whose snapshots to check (repeatable; default: [tool.mailsmith] "
        "campaigns in pyproject.toml)",
    )
    group.addoption(
        "--mailsmith-update",
        action="store_true",
        default=False,
        help="write new and changed email snapshots, remove orphaned ones "
        "(what --snapshot-update does)",
    )
    if importlib.util.find_spec("syrupy") is not None:
        # syrupy's plugin adds --snapshot-update (and it means the same); adding it here
        # as well would break syrupy when it registers after this plugin
        return
    try:
        group.addoption(
            "--snapshot-update",
            action="store_true",
            default=False,
            help="write new and changed email snapshots, remove orphaned ones",
        )
    except ValueError:  # another snapshot plugin added it already: share it
        pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: an email snapshot of mailsmith's plugin")


def configured_campaigns(config: pytest.Config) -> list[Path]:
    """The ``--mailsmith-campaign`` paths, else ``[tool.mailsmith] campaigns`` (relative
    to the rootdir)."""
    given = [Path(p) for p in config.getoption("--mailsmith-campaign")]
    if given:
        return [p if p.is_absolute() else Path(config.invocation_params.dir) / p for p in given]
    pyproject = config.rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return []
    with pyproject.open("rb") as handle:
        settings = tomllib.load(handle).get("tool", {}).get("mailsmith", {})
    return [config.rootpath / p for p in settings.get("campaigns", [])]


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """The campaigns' snapshot items, after the project's own tests."""
    for path in configured_campaigns(config):
        shown = path.relative_to(config.rootpath) if path.is_relative_to(config.rootpath) else path
        name = f"mailsmith::{shown.as_posix()}"
        campaign = CampaignSnapshots.from_parent(session, name=name, nodeid=name, path=path)
        campaign.add_marker(MARKER)
        report = session.ihook.pytest_make_collect_report(collector=campaign)
        session.ihook.pytest_collectreport(report=report)
        items.extend(item for item in report.result if isinstance(item, pytest.Item))


def _update(config: pytest.Config) -> bool:
    shared = config.getoption("--snapshot-update", default=False)
    return bool(shared or config.getoption("--mailsmith-update"))


class CampaignSnapshots(pytest.Collector):
    """One campaign: renders its cases once and yields an item per case."""

    def __init__(self, *, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.campaign_path = path

    def collect(self) -> Iterator[pytest.Item]:
        from renderer.campaign import load_campaign
        from renderer.snapshots.cases import collect_cases
        from renderer.snapshots.store import case_stem, snapshot_folder
        from segments.errors import MailsmithError

        campaign = load_campaign(self.campaign_path)
        checked = list(self._check_items(campaign))
        failing = any(item.finding is not None for item in checked)
        folder = snapshot_folder(campaign)
        try:
            cases = collect_cases(campaign)
        except MailsmithError:
            if not failing:
                raise
            cases = []  # what check reports stops the renders too: its items say why
        for case in cases:
            name = f"{case.name}[{case.variant}]"
            yield CaseItem.from_parent(self, name=name, case=case, folder=folder)
        if cases or not failing:
            stems = [case_stem(c.name, c.variant) for c in cases]
            yield OrphansItem.from_parent(self, name="orphaned", folder=folder, stems=stems)
        yield from checked

    def _check_items(self, campaign: Any) -> Iterator[CheckItem]:
        from renderer.check.findings import Severity
        from renderer.check.runner import check_campaign

        errors = [f for f in check_campaign(campaign).findings if f.severity is Severity.ERROR]
        for finding in errors:
            where = f"{Path(finding.file).name}:{finding.line or ''}"
            name = f"check[{finding.rule}:{where}]"
            yield CheckItem.from_parent(self, name=name, finding=finding)
        if not errors:
            yield CheckItem.from_parent(self, name="check", finding=None)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        from segments.errors import MailsmithError

        if isinstance(excinfo.value, MailsmithError):
            return f"{self.campaign_path}: {excinfo.value}"
        return str(super().repr_failure(excinfo))


class SnapshotMismatchError(Exception):
    """A case's files differ from the stored snapshot."""


class CaseItem(pytest.Item):
    """One persona x variant: its three files against the stored snapshot."""

    def __init__(self, *, case: SnapshotCase, folder: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.folder = folder
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from renderer.snapshots.store import case_stem, compare_files, write_file

        stem = case_stem(self.case.name, self.case.variant)
        files = {f"{stem}{suffix}": text for suffix, text in self.case.files().items()}
        new, changed = compare_files(self.folder, files)
        if _update(self.config):
            for path in [*new, *(c.path for c in changed)]:
                write_file(self.folder, path, files[path])
            return
        problems = [f"no stored snapshot {path}" for path in new]
        problems += [f"{c.path} differs:\n{c.diff}" for c in changed]
        if problems:
            raise SnapshotMismatchError(
                f"email snapshot of persona {self.case.name!r}, variant {self.case.variant} "
                f"(in {self.folder}):\n" + "\n".join(problems) + "\n"
                "if the change is intended, run pytest --snapshot-update"
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, SnapshotMismatchError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.folder, None, f"mailsmith snapshot {self.name}"


class OrphansItem(pytest.Item):
    """Stored snapshots of the campaign that no case makes any more."""

    def __init__(self, *, folder: Path, stems: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.stems = stems
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from renderer.snapshots.store import orphans, remove_files

        found = orphans(self.folder, self.stems)
        if found and _update(self.config):
            remove_files(self.folder, found)
        elif found:
            listed = "\n  ".join(found)
            raise SnapshotMismatchError(
                f"orphaned snapshots in {self.folder} (no persona makes them):\n  {listed}\n"
                "remove them with pytest --snapshot-update, or mailsmith snapshot --prune"
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, SnapshotMismatchError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.folder, None, f"mailsmith snapshots {self.name}"


@pytest.fixture
def email_snapshot(snapshot: Any) -> Any:
    """syrupy's ``snapshot`` fixture with the email extension (normalized HTML)."""
    from renderer.snapshots.syrupy_ext import EmailSnapshotExtension

    return snapshot.use_extension(EmailSnapshotExtension)


class CheckFindingError(Exception):
    """An error ``mailsmith check`` reports for the campaign."""


class CheckItem(pytest.Item):
    """One error of ``mailsmith check`` (``finding``), or the clean check (None)."""

    def __init__(self, *, finding: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.finding = finding
        self.add_marker(MARKER)

    def runtest(self) -> None:
        if self.finding is not None:
            f = self.finding
            where = f"{f.file}:{f.line}" if f.line else f.file
            raise CheckFindingError(f"{where}: {f.rule}: {f.message}\n  hint: {f.hint}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, CheckFindingError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.finding.line - 1 if self.finding and self.finding.line else None
        return Path(self.finding.file if self.finding else "."), line, f"mailsmith {self.name}"
