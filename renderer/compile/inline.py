"""CSS inlining, the one module that imports an inliner.

css-inline is the engine's inliner; premailer is kept for the naive baseline in
benchmarks (see docs/performance.md for why). Both keep MJML's ``<style>`` blocks
(responsive ``@media`` rules, Outlook and Thunderbird fixes) and never fetch
remote stylesheets.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import css_inline

from renderer.compile.mjml import one_line_value
from segments.errors import MjmlError

_INLINER = css_inline.CSSInliner(
    keep_style_tags=True,
    keep_at_rules=True,
    load_remote_stylesheets=False,
)
_STYLE_ATTRIBUTE_RE = re.compile(
    r"""<[a-zA-Z][^<>]*?(?<![\w:.-])style\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE
)
_HINT = (
    "the CSS inliner reads a style attribute or an <mj-style> rule as a list of "
    "'property: value' declarations separated by ';'"
)


def inline_css(html: str, *, file: str | None = None) -> str:
    """Inline ``<style>`` rules into ``style`` attributes, keeping the style blocks.

    :class:`MjmlError` naming ``file`` when the inliner cannot read the document
    (a ``style`` attribute that is not a declaration list, such as ``color``).
    """
    try:
        return str(_INLINER.inline(html))
    except css_inline.InlineError as exc:
        raise MjmlError(f"CSS inlining failed: {exc}", file=file, hint=_HINT) from None


def refused_style(source: str) -> int | None:
    """Where in MJML ``source`` the value of the first ``style`` attribute the inliner
    refuses starts (None when every one reads).

    The inliner's own error has no position: each attribute is tried alone, as
    :func:`~renderer.compile.mjml.compile_mjml` passes it on.
    """
    for match in _STYLE_ATTRIBUTE_RE.finditer(source):
        group = 1 if match.group(1) is not None else 2
        value = one_line_value("style", match.group(group)).replace('"', "&quot;")
        try:
            _INLINER.inline_fragment(f'<p style="{value}">x</p>', "p { margin: 0 }")
        except css_inline.InlineError:
            return match.start(group)
    return None


def premailer_inline(html: str) -> str:
    """Inline with premailer, configured to keep what MJML needs (the slow baseline)."""
    import logging

    import premailer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(
            premailer.transform(
                html,
                keep_style_tags=True,
                strip_important=False,
                disable_validation=True,
                allow_network=False,
                cssutils_logging_level=logging.CRITICAL,
            )
        )


INLINERS: dict[str, Callable[[str], str]] = {
    "css-inline": inline_css,
    "premailer": premailer_inline,
}
