"""Raw HTTP clients for the server tests: a test PKI, slow and malformed requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import SocketStream

from controller.runtime.httpserver import HttpServer, Limits, Tls
from e2e.cluster.pki import CertificateAuthority

FAST = Limits(max_head=1024, idle_timeout=0.3, graceful_timeout=5.0)


class Counting:
    """A probes app that counts the requests that reach it."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self) -> bool:
        self.calls += 1
        return True


@asynccontextmanager
async def serving(server: HttpServer) -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(server.serve)
        yield port
        tg.cancel_scope.cancel()


async def read_all(stream: SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            return data


async def trickle(port: int, data: bytes, every: float = 0.05, *, first: bytes = b"") -> tuple[int, bytes]:
    """Send `first` at once, then `data` one byte at a time until the server closes; the bytes of `data` sent
    and what came back."""
    closed = anyio.Event()
    answer = b""
    sent = 0
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:

        async def receive() -> None:
            nonlocal answer
            answer = await read_all(stream)
            closed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(receive)
            await stream.send(first)
            for byte in data:
                if closed.is_set():
                    break
                try:
                    await stream.send(bytes([byte]))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    break
                sent += 1
                await anyio.sleep(every)
            await closed.wait()
    return sent, answer


def serving_pki(directory: Path) -> tuple[Path, Tls]:
    """A throwaway CA and a serving certificate for 127.0.0.1 signed by it (as a Secret would mount)."""
    ca = CertificateAuthority(directory, "ca")
    pair = ca.issue("serving", "localhost", dns_names=["localhost"], ip_addresses=["127.0.0.1"], server=True)
    return ca.cert_path, Tls(str(pair.cert), str(pair.key))


def mount(source: Tls, target: Tls) -> None:
    """Write `source`'s files where `target` reads them, as the kubelet updates a Secret volume."""
    Path(target.cert_file).write_bytes(Path(source.cert_file).read_bytes())
    Path(target.key_file).write_bytes(Path(source.key_file).read_bytes())


def half_written(target: Tls) -> None:
    Path(target.key_file).write_text("-----BEGIN PRIVATE KEY-----\n")
