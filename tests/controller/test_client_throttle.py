"""Client-side throttling: client-go's token bucket semantics, and the transport waiting for its token."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import anyio
import pytest

from controller.throttle import ThrottledTransport, TokenBucket, throttled
from controller.transport import Params, Response


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_paces_at_qps() -> None:
    clock = _Clock()
    bucket = TokenBucket(rate=10.0, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)  # reservations queue up behind each other
    clock.now += 1.0  # refills, but never beyond the burst
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() > 0


def test_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1, burst=0)


class _Recorder:
    """A transport that records when each request arrived."""

    host = "api:6443"

    def __init__(self) -> None:
        self.times: list[float] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> Response:
        self.times.append(time.monotonic())
        return Response(200, b"{}")

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Params | None = None, request_timeout: float | None = None
    ) -> AsyncIterator[object]:
        self.times.append(time.monotonic())
        yield object()

    async def aclose(self) -> None:
        pass


def test_zero_qps_leaves_the_transport_alone() -> None:
    inner = _Recorder()
    assert throttled(inner, 0, 10) is inner  # pyright: ignore[reportArgumentType]


async def test_requests_and_watches_beyond_the_burst_wait_for_tokens() -> None:
    inner = _Recorder()
    transport = ThrottledTransport(inner, qps=20.0, burst=2)  # pyright: ignore[reportArgumentType]
    start = time.monotonic()
    for _ in range(3):
        await transport.request("GET", "/api/v1/pods")
    async with transport.stream("GET", "/api/v1/pods"):
        pass
    elapsed = [t - start for t in inner.times]
    assert elapsed[1] < 0.04  # within the burst
    assert elapsed[2] >= 0.045  # one token at 20/s
    assert elapsed[3] >= 0.095  # the watch waited its turn too
    assert transport.host == "api:6443"


async def test_concurrent_callers_share_one_bucket() -> None:
    inner = _Recorder()
    transport = ThrottledTransport(inner, qps=50.0, burst=1)  # pyright: ignore[reportArgumentType]
    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(transport.request, "GET", "/api/v1/pods")
    assert max(inner.times) - start >= 0.075  # 4 waits of 20 ms
