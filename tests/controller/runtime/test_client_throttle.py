"""Client-side throttling: client-go's token bucket semantics, and the transport waiting for its token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

from controller.runtime.throttle import ThrottledTransport, TokenBucket, throttled
from controller.runtime.transport import Params, Response
from tests.virtual_time import run_virtual


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
        self.times.append(anyio.current_time())
        return Response(200, b"{}")

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Params | None = None, request_timeout: float | None = None
    ) -> AsyncIterator[object]:
        self.times.append(anyio.current_time())
        yield object()

    async def aclose(self) -> None:
        pass


def test_zero_qps_leaves_the_transport_alone() -> None:
    inner = _Recorder()
    assert throttled(inner, 0, 10) is inner  # pyright: ignore[reportArgumentType]


def _on_loop_clock(transport: ThrottledTransport) -> ThrottledTransport:
    """The transport's bucket on the event loop's (virtual) clock, the one its waits use."""
    transport.bucket = TokenBucket(transport.bucket.rate, transport.bucket.burst, clock=anyio.current_time)
    return transport


def test_requests_and_watches_beyond_the_burst_wait_for_tokens() -> None:
    inner = _Recorder()

    async def main() -> None:
        transport = _on_loop_clock(ThrottledTransport(inner, qps=20.0, burst=2))  # pyright: ignore[reportArgumentType]
        for _ in range(3):
            await transport.request("GET", "/api/v1/pods")
        async with transport.stream("GET", "/api/v1/pods"):
            pass
        assert transport.host == "api:6443"

    run_virtual(main)
    # Two within the burst at once, then one token each 50 ms at 20/s; the watch waited its turn too.
    assert inner.times == pytest.approx([0.0, 0.0, 0.05, 0.10])


def test_concurrent_callers_share_one_bucket() -> None:
    inner = _Recorder()

    async def main() -> None:
        transport = _on_loop_clock(ThrottledTransport(inner, qps=50.0, burst=1))  # pyright: ignore[reportArgumentType]
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(transport.request, "GET", "/api/v1/pods")

    run_virtual(main)
    assert sorted(inner.times) == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])  # one token per 20 ms
