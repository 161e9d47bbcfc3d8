"""The operator's HTTP server (Hypercorn) on real loopback sockets: bad and slow clients, TLS, stopping."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from controller.runtime.health import metrics_app, probes_app
from controller.runtime.httpserver import HttpServer, Tls, parse_address
from tests.controller.runtime.http_clients import (
    FAST,
    Counting,
    half_written,
    mount,
    read_all,
    serving,
    serving_pki,
    trickle,
)


def test_parse_address() -> None:
    assert parse_address(":8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9") == ("0.0.0.0", 9)
    assert parse_address("[::1]:9") == ("::1", 9)
    assert parse_address("0") is None
    assert parse_address("") is None
    with pytest.raises(ValueError, match="invalid literal"):
        parse_address("host:http")


async def test_probes_and_metrics_answer_and_refuse_what_they_do_not_serve() -> None:
    counting = Counting()
    probes = HttpServer(probes_app({"ok": counting.check}, {"bad": lambda: False}), "127.0.0.1", 0, name="t")
    metrics = HttpServer(metrics_app(), "127.0.0.1", 0, name="m")
    async with serving(probes) as port, serving(metrics) as mport, httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).text == "ok\n"
        ready = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert (ready.status_code, ready.text) == (500, "failed: bad\n")
        assert (await http.post(f"http://127.0.0.1:{port}/healthz")).status_code == 405
        assert (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 404
        exposition = await http.get(f"http://127.0.0.1:{mport}/metrics")
        assert exposition.status_code == 200
        assert "workqueue_adds_total" in exposition.text
        assert exposition.headers["content-type"].startswith("text/plain")
        open_metrics = await http.get(
            f"http://127.0.0.1:{mport}/metrics", headers={"Accept": "application/openmetrics-text"}
        )
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert (await http.get(f"http://127.0.0.1:{mport}/healthz")).status_code == 404
    assert counting.calls == 1


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /healthz\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2048 + b"\r\n\r\n", b"431"),
    ],
    ids=["request-line", "no-version", "header-line", "content-length", "oversized-head"],
)
async def test_malformed_and_oversized_requests_are_refused_before_the_app(
    request_bytes: bytes, status: bytes
) -> None:
    counting = Counting()
    server = HttpServer(probes_app({"ok": counting.check}, {}), "127.0.0.1", 0, name="t", limits=FAST)
    async with serving(server) as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request_bytes)
            answer = await read_all(stream)
        assert answer.split(b" ", 2)[:2] == [b"HTTP/1.1", status], answer
        async with httpx.AsyncClient() as http:  # and the server still serves others
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    assert counting.calls == 1


async def test_a_client_sending_one_byte_at_a_time_is_cut_off() -> None:
    counting = Counting()
    server = HttpServer(probes_app({"ok": counting.check}, {}), "127.0.0.1", 0, name="t", limits=FAST)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 500 + b"\r\n\r\n"
    async with serving(server) as port:
        sent, answer = await trickle(port, head)
    assert sent < len(head), "the server waited for the whole trickled head"
    assert answer == b"", "nothing was answered to a head that never completed"
    assert counting.calls == 0


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    server = HttpServer(probes_app({}, {}), "127.0.0.1", 0, name="t", limits=FAST)
    async with serving(server) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_all(stream)  # returns only once the server closes the kept-alive connection
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"ok\n")


async def test_stopping_lets_a_request_in_flight_finish_and_closes_the_listener() -> None:
    entered, release = anyio.Event(), anyio.Event()

    async def slow(_request: Request) -> PlainTextResponse:
        entered.set()
        await release.wait()
        return PlainTextResponse("done")

    server = HttpServer(Starlette(routes=[Route("/slow", slow)]), "127.0.0.1", 0, name="t", limits=FAST)
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient() as http, anyio.create_task_group() as outer:
        serving_scope = anyio.CancelScope()

        async def run() -> None:
            with serving_scope:
                await server.serve()

        outer.start_soon(run)
        while server.port == 0:  # noqa: ASYNC110 - waiting for the bind
            await anyio.sleep(0.01)

        async def ask() -> None:
            answers.append(await http.get(f"http://127.0.0.1:{server.port}/slow"))

        outer.start_soon(ask)
        await entered.wait()
        serving_scope.cancel()
        await anyio.sleep(0.1)
        release.set()
    assert [a.text for a in answers] == ["done"]
    with pytest.raises(OSError, match=r"(?i)connect|refused"):
        await anyio.connect_tcp("127.0.0.1", server.port)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tls]:
    return serving_pki(tmp_path_factory.mktemp("pki"))


async def test_tls_serves_with_the_mounted_certificate_and_refuses_plain_http(pki: tuple[Path, Tls]) -> None:
    ca, tls = pki
    server = HttpServer(probes_app({}, {}), "127.0.0.1", 0, name="t", tls=tls, limits=FAST)
    async with serving(server) as port:
        verify = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(verify=verify) as http:
            answer = await http.get(f"https://127.0.0.1:{port}/healthz")
            assert (answer.status_code, answer.http_version) == (200, "HTTP/1.1")
        async with httpx.AsyncClient() as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"https://127.0.0.1:{port}/healthz")
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{port}/healthz")


async def test_an_unreadable_certificate_fails_at_start_naming_the_file(tmp_path: Path) -> None:
    missing = Tls(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    server = HttpServer(probes_app({}, {}), "127.0.0.1", 0, name="t", tls=missing)
    with pytest.raises(OSError, match=r"tls\.crt"):
        await server.serve()


async def test_a_renewed_certificate_is_served_from_the_next_connection_on(tmp_path: Path) -> None:
    old_ca, tls = serving_pki(tmp_path / "old")
    new_ca, renewed = serving_pki(tmp_path / "new")
    served = Tls(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    mount(tls, served)
    server = HttpServer(probes_app({}, {}), "127.0.0.1", 0, name="t", tls=served, limits=FAST)
    async with serving(server) as port:
        url = f"https://127.0.0.1:{port}/healthz"
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(old_ca))) as http:
            assert (await http.get(url)).status_code == 200
        half_written(served)  # a rotation caught midway: the old certificate stays
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(old_ca))) as http:
            assert (await http.get(url)).status_code == 200
        mount(renewed, served)
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(new_ca))) as http:
            assert (await http.get(url)).status_code == 200
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(old_ca))) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(url)
