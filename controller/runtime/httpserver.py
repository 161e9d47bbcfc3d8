"""The operator's one HTTP server: an ASGI app served by Hypercorn on one address, optionally over TLS.

Every endpoint the operator serves (``/metrics``, ``/healthz`` and ``/readyz``, the live progress endpoint)
goes through :class:`HttpServer`, so the request parsing is Hypercorn's (h11) and the protections are the
same everywhere: a request head over :attr:`Limits.max_head` bytes is refused (400/431) before any app code
runs (by h11 while it arrives, by :class:`_HeadLimit` once whole), and a connection without a request in
flight, including one still sending its head, is closed after :attr:`Limits.idle_timeout` seconds, so a
client that trickles bytes cannot hold a connection. Bodies are
the app's business (see the progress endpoint's own limits). Only HTTP/1.1 is offered, also over TLS.

The server runs until the task serving it is cancelled; it then stops accepting, lets requests in flight
finish for up to :attr:`Limits.graceful_timeout` seconds and closes the rest.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Final, cast

import anyio
from anyio.abc import TaskStatus
from hypercorn.asyncio import serve as hypercorn_serve  # pyright: ignore[reportUnknownVariableType]
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

BACKLOG: Final = 1024


def parse_address(address: str) -> tuple[str, int] | None:
    """``"host:port"`` (``":port"`` means 127.0.0.1) to a tuple; ``"0"`` or ``""`` disables."""
    if address in ("", "0"):
        return None
    host, _, port = address.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))


@dataclass(frozen=True, slots=True)
class Tls:
    """A certificate chain and its key, PEM files (a ``kubernetes.io/tls`` Secret's ``tls.crt``/``tls.key``).

    Read when the server starts (unreadable files fail the start) and again on the first handshake after
    either file changed, so a renewed Secret (cert-manager rotates it in place) is served without a restart;
    a rotation caught half-written keeps the previous certificate until the next handshake."""

    cert_file: str
    key_file: str

    def context(self) -> ssl.SSLContext:
        """A server context for TLS 1.2+ offering HTTP/1.1; OSError naming the files when they do not load."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as err:
            raise OSError(
                f"cannot load TLS certificate {self.cert_file} with key {self.key_file}: {err}"
            ) from err
        context.set_alpn_protocols(["http/1.1"])
        return context

    def reloading_context(self) -> ssl.SSLContext:
        """:meth:`context`, switching each new connection to the files' current certificate."""
        return _Reloader(self).context


class _Reloader:
    def __init__(self, tls: Tls) -> None:
        self.tls = tls
        self.stamp = self._stamp()
        self.current = tls.context()
        self.context = tls.context()
        self.context.sni_callback = self._choose  # OpenSSL calls it for every ClientHello, SNI or not

    def _stamp(self) -> tuple[int, int]:
        return (os.stat(self.tls.cert_file).st_mtime_ns, os.stat(self.tls.key_file).st_mtime_ns)

    def _choose(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        try:
            stamp = self._stamp()
            if stamp != self.stamp:
                self.current = self.tls.context()
                self.stamp = stamp
                log.info("TLS certificate %s reloaded", self.tls.cert_file)
        except OSError as err:
            log.warning("TLS certificate not reloaded (serving the previous one): %s", err)
        connection.context = self.current


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may cost the server."""

    max_head: int = 16 * 1024
    """Bytes of request line and headers."""
    idle_timeout: float = 5.0
    """Seconds a connection may go without a request in flight (keep-alive, or a head still arriving)."""
    graceful_timeout: float = 3.0
    """Seconds requests in flight get to finish when the server stops."""


class _Config(Config):
    """Hypercorn's configuration, serving a socket this module bound (so port 0 can be read back) with this
    module's TLS context."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext | None) -> None:
        super().__init__()
        self._socket = sock
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return self._context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._context

    def create_sockets(self) -> Sockets:
        if self._context is not None:
            return Sockets([self._socket], [], [])
        return Sockets([], [self._socket], [])


class _HeadLimit:
    """Refuses (431) a request whose head is over `max_head` bytes. Hypercorn's h11 bounds only a head still
    arriving; one that comes whole in a single read is checked here, before the app sees it."""

    def __init__(self, app: ASGIApp, max_head: int) -> None:
        self.app = app
        self.max_head = max_head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            size = len(scope.get("raw_path") or b"") + sum(len(k) + len(v) + 4 for k, v in headers)
            if size > self.max_head:
                refusal = PlainTextResponse(f"request head over {self.max_head} bytes\n", status_code=431)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HttpServer:
    """Serves `app` on `host`:`port` (port 0 picks a free one: read :attr:`port` after start)."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        name: str,
        tls: Tls | None = None,
        limits: Limits | None = None,
    ):
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.tls = tls
        self.limits = limits or Limits()

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; reports the bound port through ``task_status``."""
        context = self.tls.reloading_context() if self.tls is not None else None
        sock = self._bind()
        config = _Config(sock, context)
        config.backlog = BACKLOG
        config.h11_max_incomplete_size = self.limits.max_head
        config.keep_alive_timeout = self.limits.idle_timeout
        config.ssl_handshake_timeout = self.limits.idle_timeout
        config.graceful_timeout = self.limits.graceful_timeout
        config.alpn_protocols = ["http/1.1"]
        config.include_server_header = False
        config.errorlog = log
        config.accesslog = None
        log.info(
            "%s listening",
            self.name,
            extra={"host": self.host, "port": self.port, "tls": context is not None},
        )
        stopping = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run, config, stopping)
            task_status.started(self.port)
            try:
                await anyio.sleep_forever()
            finally:
                stopping.set()

    async def _run(self, config: _Config, stopping: anyio.Event) -> None:
        # Hypercorn stops through its shutdown trigger, never by cancellation (its clean-up awaits); the
        # deadline set on stopping only bounds a server that would not stop.
        with anyio.CancelScope(shield=True) as scope:

            async def trigger() -> None:
                await stopping.wait()
                scope.deadline = anyio.current_time() + self.limits.graceful_timeout + 1.0

            app = cast(ASGIFramework, _HeadLimit(self.app, self.limits.max_head))
            await hypercorn_serve(app, config, shutdown_trigger=trigger, mode="asgi")

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family, backlog=BACKLOG)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        return sock
