"""A minimal HTTP/1.1 server for ``/healthz``, ``/readyz`` and ``/metrics`` (loopback by default).

Not a general web server: GET only, one response per connection, no keep-alive.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping

import anyio
from anyio.abc import SocketStream, TaskStatus
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller import metrics

log = logging.getLogger(__name__)

Check = Callable[[], bool]
Route = Callable[[], tuple[int, str, bytes]]


def parse_address(address: str) -> tuple[str, int] | None:
    """``"host:port"`` (``":port"`` means 127.0.0.1) to a tuple; ``"0"`` or ``""`` disables."""
    if address in ("", "0"):
        return None
    host, _, port = address.rpartition(":")
    return (host or "127.0.0.1", int(port))


def checks_route(checks: Mapping[str, Check]) -> Route:
    """200 ``ok`` when every named check passes, else 500 listing the failures."""

    def route() -> tuple[int, str, bytes]:
        failed = [name for name, check in checks.items() if not _safe(check)]
        if failed:
            return 500, "text/plain", ("failed: " + ", ".join(failed) + "\n").encode()
        return 200, "text/plain", b"ok\n"

    return route


def metrics_route() -> tuple[int, str, bytes]:
    """The controller registry in Prometheus text format."""
    return 200, CONTENT_TYPE_LATEST, generate_latest(metrics.REGISTRY)


def _safe(check: Check) -> bool:
    try:
        return check()
    except Exception:
        log.exception("health check failed")
        return False


class HttpServer:
    """Serves fixed routes; ``port`` 0 picks a free port (read :attr:`port` after start)."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route]):
        self.host = host
        self.port = port
        self.routes = dict(routes)

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; reports the bound port through ``task_status``."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        task_status.started(self.port)
        async with listener:
            await listener.serve(self._handle)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            data = b""
            with anyio.move_on_after(5):
                while b"\r\n\r\n" not in data and len(data) < 8192:
                    try:
                        data += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
            line = data.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            route = self.routes.get(path)
            if len(parts) < 2 or parts[0] != "GET":
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            elif route is None:
                status, ctype, body = 404, "text/plain", b"not found\n"
            else:
                status, ctype, body = route()
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.send(head.encode() + body)
