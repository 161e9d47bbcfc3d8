"""The httpx transport (credentials from kr8s) against loopback HTTP servers: auth, paths, errors,
streaming, resends on dropped connections, credential reload on 401, no session shared across loops."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream, TaskGroup

from controller.runtime.client import Client, PatchType
from controller.runtime.errors import Gone, NotFound, TransportError, Unauthorized
from controller.runtime.resource import CONFIG_MAPS
from controller.runtime.transport import HttpxTransport


class LoopbackApiServer:
    """Answers a handful of fixed routes; one response per connection (Connection: close)."""

    def __init__(self) -> None:
        self.port = 0
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    async def serve(self, tg: TaskGroup) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))

        async def serve() -> None:
            async with listener:  # closed on cancel, so later connects are refused
                await listener.serve(self.handle)

        tg.start_soon(serve)

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                body += await stream.receive()
            self.seen.append((method, target, headers))
            path = target.split("?", 1)[0]
            if path.rstrip("/") == "/version":
                await self.reply(stream, 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
            elif "watch=true" in target and "resourceVersion=1&" in target:
                await self.reply(stream, 410, {"kind": "Status", "code": 410, "reason": "Expired"})
            elif "watch=true" in target:
                await stream.send(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                )
                for i in range(2):
                    event = {
                        "type": "ADDED",
                        "object": {"metadata": {"name": f"w{i}", "resourceVersion": str(10 + i)}},
                    }
                    await stream.send(json.dumps(event).encode() + b"\n")
                    await anyio.sleep(0.01)
            elif path.endswith("/missing"):
                await self.reply(
                    stream, 404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "nope"}
                )
            elif method == "GET":
                listed = {"kind": "ConfigMapList", "metadata": {"resourceVersion": "9"}, "items": []}
                await self.reply(stream, 200, listed, gzipped="gzip" in headers.get("accept-encoding", ""))
            else:
                await self.reply(
                    stream, 200, {"echo": json.loads(body or b"{}"), "ctype": headers.get("content-type")}
                )

    @staticmethod
    async def reply(stream: SocketStream, code: int, obj: Any, *, gzipped: bool = False) -> None:
        body = gzip.compress(json.dumps(obj).encode()) if gzipped else json.dumps(obj).encode()
        encoding = "Content-Encoding: gzip\r\n" if gzipped else ""
        head = f"HTTP/1.1 {code} X\r\nContent-Length: {len(body)}\r\n{encoding}Connection: close\r\n\r\n"
        await stream.send(head.encode() + body)


def kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [
                    {"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "default"}}
                ],
                "current-context": "ctx",
            }
        )
    )
    return path


@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_httpx_transport_end_to_end(tmp_path: Path) -> None:
    server = LoopbackApiServer()
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        client = Client(await HttpxTransport.connect(kubeconfig(tmp_path, server.port)))
        assert client.transport.host == f"127.0.0.1:{server.port}"
        listed = await client.list(CONFIG_MAPS, "default", resource_version="0")
        assert listed.resource_version == "9"
        with pytest.raises(NotFound):
            await client.get(CONFIG_MAPS, "missing", "default")
        patched = await client.patch(
            CONFIG_MAPS, "x", {"data": {"a": "1"}}, "default", patch_type=PatchType.MERGE
        )
        assert patched == {"echo": {"data": {"a": "1"}}, "ctype": "application/merge-patch+json"}
        async with client.watch(CONFIG_MAPS, "default", resource_version="9", timeout_seconds=300) as events:
            names = [e.object["metadata"]["name"] async for e in events]
        assert names == ["w0", "w1"]
        with pytest.raises(Gone):
            async with client.watch(CONFIG_MAPS, "default", resource_version="1"):
                raise AssertionError("a 410 at watch start must raise before the body runs")
        tg.cancel_scope.cancel()
    requests = [(m, t) for m, t, _ in server.seen if not t.startswith("/version")]
    assert requests[0] == ("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=0&limit=500")
    assert requests[2][1] == "/api/v1/namespaces/default/configmaps/x"
    watch = requests[3][1]
    assert requests[4][0] == "GET"
    for param in ("watch=true", "allowWatchBookmarks=true", "timeoutSeconds=300", "resourceVersion=9"):
        assert param in watch
    assert all(h.get("authorization") == "Bearer secret-token" for _, _, h in server.seen)
    # Reads ask for gzip (the LIST above was answered compressed and decoded); writes do not.
    unary = [h.get("accept-encoding") for _, t, h in server.seen if "watch=true" not in t]
    assert unary == ["gzip", "gzip", None]


async def test_httpx_transport_connection_refused_is_a_transport_error(tmp_path: Path) -> None:
    server = LoopbackApiServer()
    transport: HttpxTransport | None = None
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        transport = await HttpxTransport.connect(kubeconfig(tmp_path, server.port))
        tg.cancel_scope.cancel()
    await anyio.sleep(0.05)
    assert transport is not None
    with pytest.raises(TransportError, match="Connect"):
        await Client(transport).get(CONFIG_MAPS, "x", "default")


class KeepAliveServer:
    """Keeps connections open, but drops each one without an answer at its second request (as a proxy or
    an apiserver restart does to idle keep-alive connections); answers 401 to tokens other than `token`."""

    def __init__(self, token: str = "secret-token") -> None:
        self.port = 0
        self.token = token
        self.answered: list[tuple[str, str]] = []
        self.dropped = 0

    async def serve(self, tg: TaskGroup) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))

        async def serve() -> None:
            async with listener:
                await listener.serve(self.handle)

        tg.start_soon(serve)

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            data = b""
            for turn in range(2):
                while b"\r\n\r\n" not in data:
                    try:
                        data += await stream.receive()
                    except anyio.EndOfStream:  # the client closed the connection
                        return
                head, _, data = data.partition(b"\r\n\r\n")
                if turn == 1:
                    self.dropped += 1
                    return
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
                length = int(headers.get("content-length", "0"))
                while len(data) < length:
                    data += await stream.receive()
                data = data[length:]
                if headers.get("authorization") != f"Bearer {self.token}":
                    body, code = b'{"kind":"Status","code":401,"reason":"Unauthorized"}', 401
                else:
                    self.answered.append((method, target))
                    body, code = b'{"metadata":{"name":"x"}}', 200
                await stream.send(f"HTTP/1.1 {code} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


async def test_a_dropped_keep_alive_connection_resends_idempotent_requests_only(tmp_path: Path) -> None:
    server = KeepAliveServer()
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        client = Client(await HttpxTransport.connect(kubeconfig(tmp_path, server.port)))
        assert (await client.get(CONFIG_MAPS, "x", "default"))["metadata"]["name"] == "x"
        # The pooled connection is dropped at the next request: the GET goes again on a new one.
        assert (await client.get(CONFIG_MAPS, "x", "default"))["metadata"]["name"] == "x"
        assert server.dropped == 1
        with pytest.raises(TransportError, match="RemoteProtocolError"):
            await client.patch(CONFIG_MAPS, "x", {"data": {}}, "default", patch_type=PatchType.MERGE)
        await client.aclose()
        tg.cancel_scope.cancel()
    assert server.dropped == 2
    assert [m for m, _ in server.answered] == ["GET", "GET"]  # the PATCH was not resent


async def test_a_401_reloads_credentials_once_and_resends(tmp_path: Path) -> None:
    server = KeepAliveServer(token="rotated-token")
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        path = kubeconfig(tmp_path, server.port)
        client = Client(await HttpxTransport.connect(path))
        path.write_text(path.read_text().replace("secret-token", "rotated-token"))  # the token rotates
        assert (await client.get(CONFIG_MAPS, "x", "default"))["metadata"]["name"] == "x"
        server.token = "revoked"
        with pytest.raises(Unauthorized):
            await client.get(CONFIG_MAPS, "x", "default")
        await client.aclose()
        tg.cancel_scope.cancel()
    assert len(server.answered) == 1


def test_clients_in_successive_event_loops_never_share_a_session(tmp_path: Path) -> None:
    """kr8s caches its Api per thread and id(event loop), and a new loop may reuse a dead loop's id:
    every Client must still reach the server its own kubeconfig names."""
    path = tmp_path / "shared"
    path.mkdir()
    hits: list[int] = []

    async def one_round() -> None:
        server = KeepAliveServer()
        async with anyio.create_task_group() as tg:
            await server.serve(tg)
            kubeconfig(path, server.port)  # same kubeconfig path, a new server each round
            client = await Client.connect(path / "kubeconfig")
            await client.get(CONFIG_MAPS, "x", "default")
            await client.aclose()
            tg.cancel_scope.cancel()
        hits.append(len(server.answered))

    for _ in range(3):
        anyio.run(one_round)
    assert hits == [1, 1, 1]
