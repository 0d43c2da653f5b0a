"""The campaign's personas (``fixtures:``) in the preview: named test recipients.

They render through :class:`renderer.fixtures.FixtureSet` (``segment_chunk`` +
``render_batch``, as ``mailsmith snapshot`` renders them), with the audience-wide values
(percentiles, clusters) of the session's real profiles. Prepared once per load of the
session and again after a reload.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from renderer.fixtures import FixtureSet, prepare_fixtures
from renderer.runtime import Rendered
from renderer.serve.session import Audience, Compiled, NoEmailError, PreviewSession


class Personas:
    """The personas of ``session``'s campaign, prepared lazily for its current load."""

    def __init__(self, session: PreviewSession) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._set: FixtureSet | None = None

    def current(self) -> FixtureSet:
        """The personas for what the session shows now (prepared again after a reload)."""
        loaded, compiled = self.session.state()
        key = (id(loaded), id(compiled))
        with self._lock:
            if self._set is None or self._key != key:
                self._set = prepare_fixtures(
                    loaded.campaign, as_of=loaded.as_of, real=loaded.audience
                )
                self._key = key
            return self._set

    def names(self) -> list[str]:
        """Persona names in file order (none when the campaign has no ``fixtures:``)."""
        return self.current().names()

    def listed(self) -> list[dict[str, Any]]:
        """The personas as the page lists them: name and description."""
        return [{"name": f.name, "description": f.description} for f in self.current().fixtures]

    def explain(self, name: str, forced: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The explain panel for a persona, as for a recipient (its segments are judged
        against the real profiles' percentiles and clusters)."""
        from renderer.serve.explain import explain_recipient  # it imports the session

        email = self.render(name, forced)  # refuses an unknown name
        personas = self.current()
        loaded, _ = self.session.state()
        runtime = personas.runtime
        audience = Audience(loaded.campaign, runtime.schema, loaded.as_of, runtime.audience, [])
        with self._lock:
            batch = personas.segmented(name, forced)
        explained = explain_recipient(audience, Compiled(runtime, []), batch, email)
        return {**explained, "persona": name, "no_email": None}

    def render(self, name: str, forced: Mapping[str, str] | None = None) -> Rendered:
        """The persona's email; an unknown name is a 404-style refusal naming the others."""
        personas = self.current()
        if name not in personas.names():
            known = ", ".join(personas.names()) or "none: the campaign has no `fixtures:`"
            raise NoEmailError(
                f"no persona named {name!r} (personas: {known})",
                refusal="unknown",
                hint="name a persona of the campaign's fixtures file",
            )
        with self._lock:
            return personas.render(name, forced)
