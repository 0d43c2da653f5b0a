"""The Jinja environment the report pages render with (templates in ``templates/``).

The templates are ours, shipped in the package, so a plain environment does;
autoescape stays on because campaign, segment, field and variant names are
data, and undefined names fail loudly (a typo in a template is a bug, not an
empty string).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

__all__ = ["render_page"]


def _px(value: float) -> str:
    return f"{value:.1f}"


@cache
def environment() -> jinja2.Environment:
    """The shared environment, built on first use."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("renderer.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["px"] = _px
    return env


def render_page(template: str, **context: Any) -> str:
    """Render one page template (e.g. ``segments.html.j2``) with ``context``."""
    return environment().get_template(template).render(**context)
