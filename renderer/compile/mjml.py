"""The one module that talks to the MJML compiler (mjml-python, a binding of MRML)."""

from __future__ import annotations

import mjml

from segments.errors import MjmlError


def compile_mjml(source: str, *, file: str | None = None) -> str:
    """Compile MJML markup to HTML; raise :class:`MjmlError` naming ``file`` on failure."""
    try:
        return str(mjml.mjml2html(source))
    except Exception as exc:  # the binding raises plain exceptions with MRML's message
        raise MjmlError(
            f"MJML compilation failed: {exc}",
            file=file,
            hint="check that every mj-* element is closed and allowed where it stands",
        ) from None
