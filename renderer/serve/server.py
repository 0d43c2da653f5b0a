"""Running the preview app: uvicorn on a socket bound here, so a taken port is a
located error (never a server log line and an exit), and tests can run it in a thread.

:func:`serve_preview` is the library twin of ``mailsmith preview``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType

import uvicorn

from renderer.serve.app import create_app
from renderer.serve.session import PreviewSession
from segments.errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class _QuietServer(uvicorn.Server):
    """uvicorn, stopping on Ctrl-C or SIGTERM without raising the signal again after
    shutdown (uvicorn does, which ends a command line in a KeyboardInterrupt traceback)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals go to the main thread: a test's or a bench's server is stopped
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            self.force_exit = self.should_exit  # a second Ctrl-C stops at once
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class PreviewServer:
    """The preview app for one campaign, bound to ``host:port`` (port 0: any free one)."""

    def __init__(
        self,
        session: PreviewSession,
        *,
        host: str = "127.0.0.1",
        port: int = 8025,
        watch: bool = True,
        sock: socket.socket | None = None,
    ) -> None:
        self.session = session
        self.host = host
        self.socket = sock or bind(host, port)
        self.port = int(self.socket.getsockname()[1])
        self.app = create_app(session, watch=watch)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            timeout_graceful_shutdown=2,  # open event streams end within a heartbeat
            lifespan="on",
        )
        self.server = _QuietServer(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the app answers."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def warnings(self) -> list[str]:
        """Reasons to think twice (see :func:`host_warnings`)."""
        return host_warnings(self.host)

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self.server.run(sockets=[self.socket])

    def start(self, timeout: float = 30.0) -> None:
        """Serve in a background thread; return once it answers."""
        self._thread = threading.Thread(target=self.run, name="mailsmith-preview", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the preview server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop a server started with :meth:`start`."""
        self.app.state.broadcaster.stopping.set()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def host_warnings(host: str) -> list[str]:
    """A host other than this machine's loopback shows the profiles to the network."""
    if host in LOCAL_HOSTS:
        return []
    return [
        f"binding to {host}: anyone who can reach this machine sees the campaign's "
        "profiles (use --host 127.0.0.1 to keep them local)"
    ]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a ConfigError (with a hint) when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits for the client's delayed ACK (40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            field="port",
            hint="choose another --port (or --port 0 for any free one)",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve_preview(
    campaign_file: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8025,
    open_browser: bool = False,
    as_of: datetime | None = None,
    on_ready: Callable[[str, list[str]], None] | None = None,
) -> None:
    """``mailsmith preview``: load the campaign once, serve the app until Ctrl-C.

    ``on_ready(url, warnings)`` is called once the port is bound, before serving.
    """
    sock = bind(host, port)  # first: a taken port fails before the campaign loads
    try:
        session = PreviewSession(campaign_file, as_of=as_of)
    except BaseException:
        sock.close()
        raise
    server = PreviewServer(session, host=host, port=port, sock=sock)
    if on_ready is not None:
        on_ready(server.url, server.warnings)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(server.url,)).start()
    server.run()
