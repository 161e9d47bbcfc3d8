"""Client-side throttling: client-go's token bucket (``QPS``/``Burst``) in front of any transport.

Every request, watch starts included, takes one token; tokens refill at ``qps`` per second up to ``burst``.
A waiting request is observed in ``rest_client_rate_limiter_duration_seconds`` (client-go's name). ``qps`` of
0 or less means no throttling, as controller-runtime's default (it relies on API priority and fairness).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable

import anyio
from prometheus_client import Histogram

from controller.runtime.metrics import REGISTRY
from controller.runtime.transport import Params, Response, StreamResponse, Transport

RATE_LIMITER_DURATION = Histogram(
    "rest_client_rate_limiter_duration_seconds",
    "Client side rate limiter latency in seconds. Broken down by verb, and host.",
    ["verb", "host"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
    registry=REGISTRY,
)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` banked; starts full (as ``golang.org/x/time/rate``)."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be > 0 (use no bucket to disable throttling)")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def reserve(self) -> float:
        """Take one token; returns how many seconds the caller must wait before using it."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class ThrottledTransport:
    """A :class:`~controller.runtime.transport.Transport` that waits for a bucket token before each
    request."""

    def __init__(self, inner: Transport, qps: float, burst: int):
        self.inner = inner
        self.bucket = TokenBucket(qps, burst)

    @property
    def host(self) -> str:
        return self.inner.host

    @property
    def server(self) -> str:
        return self.inner.server

    async def _wait(self, method: str) -> None:
        delay = self.bucket.reserve()
        RATE_LIMITER_DURATION.labels(verb=method, host=self.inner.host).observe(delay)
        if delay > 0:
            await anyio.sleep(delay)

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
        await self._wait(method)
        return await self.inner.request(
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
            request_timeout=request_timeout,
        )

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Params | None = None, request_timeout: float | None = None
    ) -> AsyncGenerator[StreamResponse]:
        await self._wait(method)
        async with self.inner.stream(method, path, params=params, request_timeout=request_timeout) as resp:
            yield resp

    async def aclose(self) -> None:
        await self.inner.aclose()


def throttled(transport: Transport, qps: float, burst: int) -> Transport:
    """``transport`` behind a ``qps``/``burst`` bucket; unchanged when ``qps <= 0``."""
    if qps <= 0:
        return transport
    return ThrottledTransport(transport, qps, max(burst, 1))
