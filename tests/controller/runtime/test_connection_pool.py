"""ConnectionPool against a loopback HTTP/1.1 server: reuse, the connection limit, stale and broken
connections never reused, close."""

from __future__ import annotations

import anyio
import httpcore
import pytest
from anyio.abc import SocketStream, TaskGroup

from controller.runtime.pool import ConnectionPool


class Server:
    """Answers every request on a kept-alive connection after `delay` s; `close_after` answers, it closes
    the connection; a request for /drop is dropped unanswered."""

    def __init__(self, *, delay: float = 0.0, close_after: int | None = None) -> None:
        self.port = 0
        self.delay = delay
        self.close_after = close_after
        self.connections = 0
        self.open_now = 0
        self.most_open = 0

    async def serve(self, tg: TaskGroup) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))

        async def serve() -> None:
            async with listener:
                await listener.serve(self.handle)

        tg.start_soon(serve)

    async def handle(self, stream: SocketStream) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        answered = 0
        try:
            async with stream:
                data = b""
                while self.close_after is None or answered < self.close_after:
                    while b"\r\n\r\n" not in data:
                        try:
                            data += await stream.receive()
                        except (anyio.EndOfStream, anyio.BrokenResourceError):
                            return
                    head, _, data = data.partition(b"\r\n\r\n")
                    if b" /drop " in head.split(b"\r\n", 1)[0]:
                        return
                    await anyio.sleep(self.delay)
                    body = b'{"n":%d}' % self.connections
                    await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                    answered += 1
        finally:
            self.open_now -= 1


def pool_for(server: Server, **options: int) -> ConnectionPool:
    return ConnectionPool(httpcore.Origin(b"http", b"127.0.0.1", server.port), None, **options)


def get(server: Server, path: str = "/x") -> httpcore.Request:
    return httpcore.Request("GET", f"http://127.0.0.1:{server.port}{path}", headers=[(b"Host", b"127.0.0.1")])


async def test_sequential_requests_reuse_one_connection() -> None:
    server = Server()
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        pool = pool_for(server)
        for _ in range(5):
            status, _, body = await pool.request(get(server))
            assert (status, body) == (200, b'{"n":1}')
        assert (pool.opened, pool.idle, server.connections) == (1, 1, 1)
        await pool.aclose()
        tg.cancel_scope.cancel()


async def test_never_more_connections_than_the_limit() -> None:
    server = Server(delay=0.05)
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        pool = pool_for(server, max_connections=3)
        answers: list[int] = []

        async def one() -> None:
            answers.append((await pool.request(get(server)))[0])

        async with anyio.create_task_group() as clients:
            for _ in range(10):
                clients.start_soon(one)
        assert answers == [200] * 10
        assert server.most_open == 3
        assert pool.opened == 3
        await pool.aclose()
        tg.cancel_scope.cancel()


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    server = Server(close_after=1)
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        pool = pool_for(server)
        assert (await pool.request(get(server)))[2] == b'{"n":1}'
        await anyio.sleep(0.05)  # the server's FIN arrives; the idle connection reads as expired
        assert (await pool.request(get(server)))[2] == b'{"n":2}'
        assert pool.opened == 2
        await pool.aclose()
        tg.cancel_scope.cancel()


async def test_a_broken_request_closes_its_connection() -> None:
    server = Server()
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        pool = pool_for(server)
        await pool.request(get(server))
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request(get(server, "/drop"))
        assert pool.idle == 0
        assert (await pool.request(get(server)))[0] == 200
        assert pool.opened == 2
        await pool.aclose()
        tg.cancel_scope.cancel()


async def test_closed_pool_closes_idle_connections_and_refuses_requests() -> None:
    server = Server()
    async with anyio.create_task_group() as tg:
        await server.serve(tg)
        pool = pool_for(server)
        await pool.request(get(server))
        await pool.aclose()
        assert pool.idle == 0
        await anyio.sleep(0.05)
        assert server.open_now == 0
        with pytest.raises(RuntimeError, match="closed"):
            await pool.request(get(server))
        tg.cancel_scope.cancel()
