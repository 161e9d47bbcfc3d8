"""A loopback stand-in for the operator's progress endpoint: records what workers post and answers as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Stub:
    """What the endpoint received; answers `status` with a JSON message and the `extra` fields."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 202
        self.extra: dict[str, Any] = {}
        """More fields of the answer (an operator's accounting)."""


@contextmanager
def progress_stub() -> Iterator[tuple[Stub, str]]:
    """Serve a :class:`Stub` on 127.0.0.1; yields it and its base URL."""
    seen = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.requests.append((self.path, dict(self.headers.items()), body))
            answer = {"status": seen.status, "message": "pod is not a TorchJob worker", **seen.extra}
            payload = json.dumps(answer).encode()
            self.send_response(seen.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
