"""Keep-alive HTTP/1.1 connections to one server, handed out in O(1) per request.

httpcore's own pool rescans every connection (asking each idle one's socket whether it is readable) each
time a request is queued or released, so with dozens of requests in flight (a burst of job creations) the
pool, not the work, dominates the operator's CPU. Here a request takes the most recently used idle
connection, checks only that one, and puts it back when its answer has been read.
"""

from __future__ import annotations

import ssl

import anyio
import httpcore

Header = tuple[bytes, bytes]


class ConnectionPool:
    """At most ``max_connections`` connections to ``origin``, reused LIFO; idle ones close after
    ``keepalive_expiry`` seconds or when the server closed them (seen before reuse)."""

    def __init__(
        self,
        origin: httpcore.Origin,
        ssl_context: ssl.SSLContext | None,
        *,
        max_connections: int = 64,
        keepalive_expiry: float = 60.0,
    ):
        self._origin = origin
        self._ssl_context = ssl_context if origin.scheme == b"https" else None
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[httpcore.AsyncHTTPConnection] = []
        self._slots = anyio.Semaphore(max_connections)
        self._closed = False
        self.opened = 0  # connections made so far (a figure for tests and benchmarks)

    @property
    def idle(self) -> int:
        """Connections waiting for a request."""
        return len(self._idle)

    async def request(self, request: httpcore.Request) -> tuple[int, list[Header], bytes]:
        """Send `request` and read its whole answer: status, headers, body.

        httpcore's exceptions propagate (the connection is then closed, never reused)."""
        async with self._slots:
            connection = await self._acquire()
            try:
                response = await connection.handle_async_request(request)
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await connection.aclose()
                raise
            if connection.is_idle() and not self._closed:
                self._idle.append(connection)
            else:
                await connection.aclose()
            return response.status, response.headers, body

    async def _acquire(self) -> httpcore.AsyncHTTPConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            await connection.aclose()
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        self.opened += 1
        return httpcore.AsyncHTTPConnection(
            self._origin, ssl_context=self._ssl_context, keepalive_expiry=self._keepalive_expiry
        )

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()
