"""CSS inlining, the one module that imports an inliner.

css-inline is the engine's inliner; premailer is kept for the naive baseline in
benchmarks (see docs/performance.md for why). Both keep MJML's ``<style>`` blocks
(responsive ``@media`` rules, Outlook and Thunderbird fixes) and never fetch
remote stylesheets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import css_inline

_INLINER = css_inline.CSSInliner(
    keep_style_tags=True,
    keep_at_rules=True,
    load_remote_stylesheets=False,
)


def inline_css(html: str) -> str:
    """Inline ``<style>`` rules into ``style`` attributes, keeping the style blocks."""
    return str(_INLINER.inline(html))


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
