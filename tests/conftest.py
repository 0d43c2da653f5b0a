"""Shared fixtures: small content folders written from strings, the demo campaign."""

from __future__ import annotations

import difflib
import html
import itertools
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from renderer import BuildOptions, build_campaign, load_campaign
from renderer.campaign import demo_campaign_path
from renderer.compile import CompiledTemplate, compile_template
from renderer.content import ContentFolders, assemble
from renderer.env import make_environment
from renderer.naive import NaivePipeline

AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data"
GOLDENS = Path(__file__).parent / "goldens"

# Property tests ask for as many examples as their invariant deserves, through
# `@settings(max_examples=examples(N))`. The default run tries a tenth of that; CI the
# full count (HYPOTHESIS_PROFILE=full in .ci/run, or `pytest --hypothesis-profile=full`).
# Tests without a count of their own get the profile's: 10, or hypothesis' usual 100.
settings.register_profile("quick", max_examples=10)
settings.register_profile("full", max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

# The demo signs its unsubscribe links with this secret in every test (and the CLI
# subprocesses they start), whatever the developer's shell holds: the goldens carry the
# tokens. A test of the demo_secret fallback or of a missing secret unsets it itself.
UNSUBSCRIBE_SECRET = "mailsmith-tests-not-a-secret"
os.environ["MAILSMITH_UNSUBSCRIBE_SECRET"] = UNSUBSCRIBE_SECRET


def examples(full: int) -> int:
    """How many examples a property test tries: ``full`` under the "full" profile,
    a tenth of it (at least 5) otherwise."""
    if settings.get_current_profile_name() == "full":
        return full
    return min(full, max(5, full // 10))


def normalize_html(text: str) -> str:
    """Whitespace/entity normalization for comparing HTML from different pipelines.

    HTML parsers imply ``<tbody>`` in tables, so an empty table may or may not
    carry one; those tags are dropped too. MRML writes some characters of
    ``<mj-title>`` into the body's ``aria-label`` as Rust escapes (``\\u{301}``);
    the naive pipeline shows them for a personalized title, the compile-once
    engine does not (its title text is a marker at compile time), so they are
    decoded before comparing.
    """
    text = re.sub(r"\\u\{([0-9a-f]{1,6})\}", lambda m: chr(int(m.group(1), 16)), text)
    text = html.unescape(text)
    text = re.sub(r"</?tbody>", "", text)
    text = re.sub(r">\s+", ">", text)
    text = re.sub(r"\s+<", "<", text)
    return re.sub(r"\s+", " ", text).strip()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite the golden files under tests/goldens/ instead of comparing with them",
    )


class Goldens:
    """Compares text with the golden files under ``tests/goldens/``, or (with
    ``--update-goldens``) writes them: a golden changes only when asked to."""

    DIFF_LINES = 60  # of the unified diff a failure shows

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, actual: str) -> None:
        path = GOLDENS / name
        if self.update:
            if not path.is_file() or path.read_text(encoding="utf-8") != actual:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(actual, encoding="utf-8")
            return
        if not path.is_file():
            pytest.fail(f"no golden file {name}: write it with --update-goldens", pytrace=False)
        expected = path.read_text(encoding="utf-8")
        if actual != expected:
            diff = difflib.unified_diff(
                expected.splitlines(),
                actual.splitlines(),
                f"goldens/{name}",
                "rendered",
                lineterm="",
            )
            shown = "\n".join(itertools.islice(diff, self.DIFF_LINES))
            pytest.fail(
                f"goldens/{name} differs (first lines of the diff below); "
                f"if the change is intended, run pytest --update-goldens\n{shown}",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def goldens(request: pytest.FixtureRequest) -> Goldens:
    return Goldens(bool(request.config.getoption("--update-goldens")))


def wrap(body: str, head: str = "") -> str:
    return f"<mjml><mj-head>{head}</mj-head><mj-body>{body}</mj-body></mjml>"


class Content:
    """Template and block folders in a temp dir, compiled on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.templates = root / "templates"
        self.blocks = root / "blocks"
        self.templates.mkdir()
        self.blocks.mkdir()

    def template(self, name: str, text: str) -> str:
        path = self.templates / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return name

    def block(self, filename: str, body: str, **meta: Any) -> None:
        lines = [f"{k}: {v}" for k, v in meta.items()]
        front = "---\n" + "\n".join(lines) + "\n---\n" if lines else ""
        (self.blocks / f"{filename}.mjml").write_text(front + body, encoding="utf-8")

    @property
    def folders(self) -> ContentFolders:
        return ContentFolders([self.templates], [self.blocks])

    def compile(self, name: str, missing: str = "reject") -> CompiledTemplate:
        assembled = assemble(self.folders, name)
        return compile_template(
            assembled, make_environment(missing), make_environment(missing, text=True)
        )  # type: ignore[arg-type]

    def naive(self, name: str) -> NaivePipeline:
        return NaivePipeline(assemble(self.folders, name), make_environment())


@pytest.fixture
def content(tmp_path: Path) -> Content:
    return Content(tmp_path)


@pytest.fixture(scope="session")
def demo_campaign() -> Any:
    return load_campaign(demo_campaign_path())


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One full build of the demo campaign, shared by every test that only reads it
    (a build writes ~120 MB: one per test session, not one per test module)."""
    out = tmp_path_factory.mktemp("demo-build") / "out"
    summary = build_campaign(load_campaign(demo_campaign_path()), BuildOptions(out=out))
    return out, summary


@pytest.fixture
def render_body(content: Content) -> Callable[..., str]:
    """Compile a one-off body and render it for a context; returns the HTML."""

    def render(body: str, **context: Any) -> str:
        name = content.template("t.mjml", wrap(body))
        html_out, _ = content.compile(name).render(context)
        return html_out

    return render


# --- mailsmith preview: a small copy of the demo campaign, with its own content ---------

HOSTILE_NAME = '<script>alert("x")</script>\'"&<b>bold</b>'
HOSTILE_ID = "H<b>\"'&1"  # a valid profile: its id and first name are markup
HOSTILE_REJECTED_ID = "R<i>\"'&2"  # a rejected one (bad address): listed with its reason


def copy_demo_campaign(folder: Path, rows: int) -> Path:
    """The demo campaign with its first ``rows`` profiles plus two hostile ones (see
    HOSTILE_*), its own copies of the templates and blocks, and the demo's saved cluster
    models (so nothing is fitted). Returns the campaign file."""
    import csv
    import shutil

    demo = demo_campaign_path().parent
    folder.mkdir(parents=True, exist_ok=True)
    for name in (
        "segments.yaml",
        "events.csv",
        "suppression.csv",
        "autumn-retail-2026.clusters.json",
        "fixtures.yaml",
        "coupons.csv",
        "catalog.csv",
    ):
        shutil.copy(demo / name, folder / name)
    root = demo_campaign_path().resolve().parent.parent
    shutil.copytree(root / "templates", folder / "templates")
    shutil.copytree(root / "blocks", folder / "blocks")
    shutil.copytree(demo / "locales", folder / "locales")  # the French and German catalogs
    with (demo / "profiles.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        kept = list(itertools.islice(reader, rows))
    hostile = {
        **kept[0],
        "id": HOSTILE_ID,
        "email": "hostile@example.com",
        "first_name": HOSTILE_NAME,
    }
    rejected = {**hostile, "id": HOSTILE_REJECTED_ID, "email": "not an address"}
    with (folder / "profiles.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows([*kept, hostile, rejected])
    text = (demo / "campaign.yaml").read_text(encoding="utf-8")
    text += "\npaths:\n  templates: [templates]\n  blocks: [blocks]\n"
    (folder / "campaign.yaml").write_text(text, encoding="utf-8")
    return folder / "campaign.yaml"


# --- PostgreSQL: a throwaway server for the SQL source tests (tests/pg.py) ---------------


@pytest.fixture(scope="session")
def pg_url() -> Any:
    """A PostgreSQL URL: ``MAILSMITH_PG_URL``, else a throwaway cluster started for the
    session. Without PostgreSQL binaries the tests skip, or fail when
    ``MAILSMITH_REQUIRE_POSTGRES=1`` (CI, .ci/run)."""
    from tests.pg import pg_bindir, start_server

    given = os.environ.get("MAILSMITH_PG_URL")
    if given:
        yield given
        return
    bindir = pg_bindir()
    if bindir is None:
        message = "no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql"
        if os.environ.get("MAILSMITH_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " and MAILSMITH_REQUIRE_POSTGRES=1")
        pytest.skip(message)
    server = start_server(bindir)
    try:
        yield server.url
    finally:
        server.stop()
