"""The preview web app: a :class:`~renderer.serve.session.PreviewSession` over HTTP.

Routes (the page uses them; so can scripts and tests)::

    GET /                          the app (a Jinja template, every value escaped)
    GET /api/status                campaign, experiments, segments, current problem
    GET /api/recipients?q=&segment=&limit=   recipients (JSON)
    GET /api/rejected              rejected rows and their reasons (JSON)
    GET /api/explain/{id}          the explain panel's data (JSON)
    GET /api/matrix                one representative per group label x variants
    GET /api/events                server-sent events: reload / problem, for live reload
    GET /email/{id}.html | .txt    exactly the build's bytes; ?variant=exp=arm repeatable
    GET /api/fixtures              the campaign's persona names (``fixtures:``)
    GET /api/personas              the personas with their descriptions (the page's list)
    GET /api/explain-fixture/{name}  the explain panel of a persona
    GET /fixture/{name}.html|.txt  a named persona's email (404 for an unknown name)
    GET /static/...                the page's script and style

Ids arrive percent-encoded in the path and are only ever dictionary keys: no id
reaches a file path. A recipient without an email gets a 4xx with the reason:
404 unknown id, 422 rejected row, 409 held out of an experiment, 400 a variant
that does not exist.

A watcher (watchfiles) reloads the session when a campaign, segments, template or
block file changes and tells every open page through ``/api/events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from watchfiles import Change, awatch

from renderer.build.output import dumps
from renderer.reports.pages import render_page
from renderer.serve.personas import Personas
from renderer.serve.session import NoEmailError, NotLoadedError, PreviewSession, parse_variants
from segments.errors import ConfigError, MailsmithError

STATIC = Path(__file__).resolve().parent / "static"
STATUS = {"unknown": 404, "rejected": 422, "holdout": 409}
EMAIL_POLICY = "default-src 'none'; img-src * data:; style-src 'unsafe-inline' *; font-src *"
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-src 'self'; "
    "connect-src 'self'; script-src 'self'"
)
HEARTBEAT = 0.5  # seconds between an event stream's checks for shutdown
Endpoint = Callable[[Request], Awaitable[Response]]


class Broadcaster:
    """Live-reload events, fanned out to every open event stream."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self.stopping = threading.Event()  # set by the server when it shuts down

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queues.add(queue)
        return queue

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self.queues):
            queue.put_nowait(event)


def json_response(value: Any, status: int = 200) -> Response:
    """JSON with the build's encoder (dates and other values as text)."""
    return Response(dumps(value), status_code=status, media_type="application/json")


def status_event(session: PreviewSession) -> dict[str, Any]:
    """What a page needs to know after a (re)load."""
    problem = session.problem
    return {
        "type": "problem" if problem else "reload",
        "generation": session.generation,
        "problem": problem.to_dict() if problem else None,
    }


def create_app(session: PreviewSession, *, watch: bool = True) -> Starlette:
    """The app for ``session``; ``watch`` reloads it when its files change."""
    broadcaster = Broadcaster()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(_watch(session, broadcaster, stop)) if watch else None
        try:
            yield
        finally:
            broadcaster.stopping.set()
            stop.set()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def guarded(handler: Callable[[Request], Response]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await _guard(lambda: handler(request))

        return endpoint

    async def events(request: Request) -> Response:
        return await _events(session, broadcaster, request)

    personas = Personas(session)
    routes = [
        Route("/", guarded(lambda r: _page(session))),
        Route("/api/status", guarded(lambda r: _status(session))),
        Route("/api/recipients", guarded(lambda r: _recipients(session, r))),
        Route("/api/rejected", guarded(lambda r: _rejected(session))),
        Route("/api/matrix", guarded(lambda r: json_response(session.matrix()))),
        Route("/api/explain/{rid:path}", guarded(lambda r: _explain(session, r))),
        Route("/api/events", events),
        Route("/email/{rid:path}.html", guarded(lambda r: _email(session, r, "html"))),
        Route("/email/{rid:path}.txt", guarded(lambda r: _email(session, r, "text"))),
        Route("/api/fixtures", guarded(lambda r: json_response({"fixtures": personas.names()}))),
        Route("/api/personas", guarded(lambda r: json_response(personas.listed()))),
        Route(
            "/api/explain-fixture/{name:path}",
            guarded(lambda r: json_response(personas.explain(r.path_params["name"], _forced(r)))),
        ),
        Route("/fixture/{name:path}.html", guarded(lambda r: _fixture(personas, r, "html"))),
        Route("/fixture/{name:path}.txt", guarded(lambda r: _fixture(personas, r, "text"))),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.broadcaster = broadcaster
    app.state.session = session
    return app


async def _guard(handler: Callable[[], Response]) -> Response:
    """Run a handler in a worker thread (rendering is CPU work); library errors become
    4xx answers that say why, never a traceback."""
    try:
        return await run_in_threadpool(handler)
    except NoEmailError as exc:
        return _refusal(exc)
    except NotLoadedError as exc:
        return json_response({"error": exc.message, "hint": exc.hint}, 503)
    except ConfigError as exc:  # a variant or query parameter that does not exist
        return json_response({"error": exc.message, "hint": exc.hint}, 400)
    except MailsmithError as exc:
        return json_response({"error": exc.message, "hint": exc.hint}, 422)


def _refusal(exc: NoEmailError) -> Response:
    return json_response(
        {
            "error": exc.message,
            "refusal": exc.refusal,
            "field": exc.field,
            "row": exc.row,
            "hint": exc.hint,
        },
        STATUS[exc.refusal],
    )


def _page(session: PreviewSession) -> Response:
    """The app page. Profile values (rejected ids) are escaped by the template."""
    try:
        rejected = session.rejected()
        experiments = session.experiments()
        segments = session.segment_names()
        loaded = session.state()[0]
        name, total = loaded.campaign.name, len(loaded.rejections)
    except MailsmithError:
        rejected, experiments, segments, name, total = [], {}, [], session.campaign_file.name, 0
    html = render_page(
        "preview.html.j2",
        campaign=name,
        rejected=rejected,
        rejected_total=total,
        experiments=experiments,
        segments=segments,
        problem=session.problem,
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_POLICY})


def _status(session: PreviewSession) -> Response:
    status = status_event(session)
    try:
        loaded, _ = session.state()
        status.update(
            campaign=loaded.campaign.name,
            experiments=session.experiments(),
            segments=session.segment_names(),
            recipients=len(session.state()[1].recipients),
            rejected=len(loaded.rejections),
        )
    except MailsmithError:
        pass
    return json_response(status)


def _recipients(session: PreviewSession, request: Request) -> Response:
    params = request.query_params
    try:
        limit = max(1, min(int(params.get("limit", "50")), 1000))
    except ValueError:
        raise ConfigError("limit must be a whole number", field="limit") from None
    found = session.find(params.get("q", ""), params.get("segment") or None, limit)
    return json_response({"recipients": [r.to_dict() for r in found]})


def _rejected(session: PreviewSession) -> Response:
    return json_response({"rejected": [r.to_dict() for r in session.rejected()]})


def _forced(request: Request) -> dict[str, str]:
    return parse_variants(request.query_params.getlist("variant"))


def _explain(session: PreviewSession, request: Request) -> Response:
    return json_response(session.explain(request.path_params["rid"], _forced(request)))


def _email(session: PreviewSession, request: Request, part: str) -> Response:
    """The build's bytes for the recipient: UTF-8, as the build writes its files."""
    email = session.render(request.path_params["rid"], _forced(request))
    body = (email.html if part == "html" else email.text).encode("utf-8")
    media = "text/html" if part == "html" else "text/plain"
    headers = {"Content-Security-Policy": EMAIL_POLICY, "Cache-Control": "no-store"}
    return Response(body, media_type=f"{media}; charset=utf-8", headers=headers)


def _fixture(personas: Personas, request: Request, part: str) -> Response:
    """A persona's email, ``?variant=`` forced as for recipients."""
    email = personas.render(request.path_params["name"], _forced(request))
    body = (email.html if part == "html" else email.text).encode("utf-8")
    media = "text/html" if part == "html" else "text/plain"
    headers = {"Content-Security-Policy": EMAIL_POLICY, "Cache-Control": "no-store"}
    return Response(body, media_type=f"{media}; charset=utf-8", headers=headers)


async def _events(session: PreviewSession, broadcaster: Broadcaster, request: Request) -> Response:
    """Server-sent events: the current status at once, then one per reload."""
    queue = broadcaster.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 500\n" + _sse(status_event(session))
            while not broadcaster.stopping.is_set():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT)
                except TimeoutError:
                    if await request.is_disconnected():
                        break
                    continue
                yield _sse(event)
        finally:
            broadcaster.queues.discard(queue)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {dumps(event)}\n\n"


async def _watch(session: PreviewSession, broadcaster: Broadcaster, stop: asyncio.Event) -> None:
    """Reload on every change to a watched file; watch again when the folders change
    (or a watched folder went away: live reload must outlive a renamed folder)."""

    def wanted(change: Change, path: str) -> bool:
        return session.is_watched(path)

    while not stop.is_set():
        paths = session.watched_paths()
        try:
            if not paths:  # the campaign's folder is gone: look again in a second
                raise FileNotFoundError(session.campaign_file.parent)
            async for changes in awatch(
                *paths, watch_filter=wanted, debounce=150, step=50, stop_event=stop
            ):
                changed = sorted({path for _, path in changes})
                await run_in_threadpool(session.reload, changed)
                broadcaster.publish(status_event(session))
                if session.watched_paths() != paths:
                    break
        except (OSError, RuntimeError):  # a watched folder vanished: look again in a second
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
