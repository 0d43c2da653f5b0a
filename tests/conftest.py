"""Shared fixtures: small content folders written from strings, the demo campaign."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from renderer import load_campaign
from renderer.campaign import demo_campaign_path
from renderer.compile import CompiledTemplate, compile_template
from renderer.content import ContentFolders, assemble
from renderer.env import make_environment
from renderer.naive import NaivePipeline

AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data"


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


@pytest.fixture
def render_body(content: Content) -> Callable[..., str]:
    """Compile a one-off body and render it for a context; returns the HTML."""

    def render(body: str, **context: Any) -> str:
        name = content.template("t.mjml", wrap(body))
        html_out, _ = content.compile(name).render(context)
        return html_out

    return render
