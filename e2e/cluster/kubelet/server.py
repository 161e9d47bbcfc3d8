"""The node's kubelet endpoint (HTTPS on 127.0.0.1): container logs for the apiserver's pods/log proxy."""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from e2e.cluster.kubelet import logs

log = logging.getLogger(__name__)

LogLookup = Callable[[str, str, str, bool], "tuple[Path, Callable[[], bool]] | None"]
"""(namespace, pod, container, previous) -> (log file, is the container still running) or None."""


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "")


class KubeletServer:
    """`GET /containerLogs/{ns}/{pod}/{container}` (follow, previous, tailLines, timestamps, limitBytes),
    `GET /healthz`."""

    def __init__(self, port: int, cert: str, key: str, lookup: LogLookup) -> None:
        self.port = port
        self.lookup = lookup
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ctx.load_cert_chain(cert, key)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1:port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self._ctx)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            if len(parts) < 2 or parts[0] != "GET":
                await self._reply(writer, 405, b"method not allowed\n")
                return
            url = urllib.parse.urlsplit(parts[1])
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
            if url.path == "/healthz":
                await self._reply(writer, 200, b"ok")
                return
            segments = url.path.strip("/").split("/")
            if len(segments) != 4 or segments[0] != "containerLogs":
                await self._reply(writer, 404, b"not found\n")
                return
            _, namespace, pod, container = segments
            found = self.lookup(namespace, pod, container, _truthy(query.get("previous")))
            if found is None:
                what = "previous terminated container" if _truthy(query.get("previous")) else "container"
                body = f'{what} "{container}" in pod "{pod}" not found\n'.encode()
                await self._reply(writer, 404, body)
                return
            path, running = found
            tail = int(query["tailLines"]) if query.get("tailLines") else None
            limit = int(query["limitBytes"]) if query.get("limitBytes") else None
            lines = logs.stream(
                path,
                follow=_truthy(query.get("follow")),
                tail_lines=tail,
                timestamps=_truthy(query.get("timestamps")),
                running=running,
            )
            await self._stream(writer, lines, limit)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("log client went away: %s", exc)
        except Exception:
            log.exception("serving %s", "request")
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, code: int, body: bytes) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[code]
        head = f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
        await writer.drain()

    async def _stream(
        self, writer: asyncio.StreamWriter, lines: AsyncIterator[bytes], limit: int | None
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        sent = 0
        async for line in lines:
            if limit is not None:
                line = line[: max(0, limit - sent)]
            if line:
                writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                await writer.drain()
                sent += len(line)
            if limit is not None and sent >= limit:
                break
        writer.write(b"0\r\n\r\n")
        await writer.drain()
