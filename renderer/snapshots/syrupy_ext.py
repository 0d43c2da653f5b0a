"""A syrupy extension for emails: ``assert email == email_snapshot``.

With ``snapshot(extension_class=EmailSnapshotExtension)`` (or the plugin's fixture),
the snapshot is one ``.html`` file per assertion, holding the HTML as
``mailsmith snapshot`` stores it (:func:`renderer.snapshots.normalize.normalize_html`:
one tag per line, attributes in order), so a hand-written test and the CLI's
snapshots read, diff and survive minifier changes alike. It serializes a
:class:`~renderer.runtime.Rendered` (its HTML) or an HTML string; assert the
subject or the text part with syrupy's default extension.

The pytest plugin (:mod:`renderer.pytest_plugin`) offers it as the fixture
``email_snapshot``.
"""

from __future__ import annotations

from typing import Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from renderer.snapshots.normalize import normalize_html


class EmailSnapshotExtension(SingleFileSnapshotExtension):
    """One normalized ``.html`` file per snapshot assertion."""

    file_extension = "html"
    _write_mode = WriteMode.TEXT

    def serialize(self, data: Any, **kwargs: Any) -> str:
        html = getattr(data, "html", data)
        if not isinstance(html, str):
            raise TypeError(
                f"an email snapshot takes a Rendered email or HTML text, not {type(data).__name__}"
            )
        return normalize_html(html)
