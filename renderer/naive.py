"""The naive per-recipient pipeline: Jinja, then MJML, then CSS inlining, every time.

It is the reference the compile-once engine must equal (tests) and the
baseline it is measured against (bench/). It is never used to build campaigns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment

from renderer.compile.inline import inline_css
from renderer.compile.lang import localize_rendered
from renderer.compile.links import LinkDecorator
from renderer.compile.mjml import compile_mjml
from renderer.content import AssembledTemplate
from segments.errors import MjmlError


class NaivePipeline:
    """Render one recipient by running every stage for that recipient."""

    def __init__(
        self,
        assembled: AssembledTemplate,
        env: SandboxedEnvironment,
        inliner: Callable[[str], str] = inline_css,
        links: LinkDecorator | None = None,
        localized: bool = False,
    ) -> None:
        self.assembled = assembled
        self.env = env
        self.links = links  # the campaign's tracked links, applied to each rendered email
        self.localized = localized  # <html lang dir> from the context (i18n:), each email
        source = "".join(t.text for t in assembled.tokens)
        self.template: Template = env.from_string(source)
        self.inliner = inliner

    def render(self, context: Mapping[str, Any]) -> str:
        """The recipient's HTML; :class:`MjmlError` naming the template when a stage fails."""
        mjml_source = self.template.render(context)
        html = compile_mjml(mjml_source, file=self.assembled.file)
        try:
            html = self.inliner(html)
        except MjmlError as exc:
            raise MjmlError(exc.message, file=self.assembled.file, hint=exc.hint) from None
        if self.localized:
            html = localize_rendered(html, context)
        return html if self.links is None else self.links.decorate_rendered(html, self.env, context)
