"""Per-item and overall rate limiters for work-queue retries (client-go's numbers).

* :class:`ItemExponentialFailureRateLimiter`: ``base * 2**failures`` capped at ``max_delay``.
* :class:`BucketRateLimiter`: a token bucket (``qps`` refill, ``burst`` capacity) shared by all
  items; each ``when`` reserves one token and returns how long to wait for it.
* :class:`MaxOfRateLimiter`: the largest delay of its members.

:func:`default_controller_rate_limiter` is client-go's ``DefaultTypedControllerRateLimiter``:
max(exponential 5 ms..1000 s, bucket 10 qps / 100 burst). controller-runtime >= 0.23 uses the
exponential limiter alone (:func:`default_item_rate_limiter`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class RateLimiter(Protocol[T_contra]):
    """How long to wait before retrying an item, and the memory of its failures."""

    def when(self, item: T_contra) -> float:
        """Record one more failure of ``item`` and return the delay before its retry, in seconds."""
        ...

    def forget(self, item: T_contra) -> None:
        """Stop tracking ``item`` (after a success)."""
        ...

    def num_requeues(self, item: T_contra) -> int:
        """How many failures of ``item`` are remembered."""
        ...


class ItemExponentialFailureRateLimiter(Generic[T]):
    """Delay ``base * 2**n`` for the n-th consecutive failure (n from 0), capped at ``max_delay``."""

    def __init__(self, base: float = 0.005, max_delay: float = 1000.0):
        self.base = base
        self.max_delay = max_delay
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp >= 1024:  # 2**1024 overflows a float; the cap has long been reached
            return self.max_delay
        return min(self.base * (2.0**exp), self.max_delay)

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter(Generic[T]):
    """Token bucket of ``burst`` tokens refilled at ``qps``; a reservation may go into debt.

    Like ``golang.org/x/time/rate.Limiter.Reserve``: the first ``burst`` calls get delay 0,
    then each call waits ``1/qps`` longer than the previous one (while no time passes).
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic):
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, item: T) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, item: T) -> None:
        """The bucket is shared; nothing per item to forget."""

    def num_requeues(self, item: T) -> int:
        return 0


class MaxOfRateLimiter(Generic[T]):
    """The maximum delay of several limiters; every member records each failure."""

    def __init__(self, *limiters: RateLimiter[T]):
        self.limiters = limiters

    def when(self, item: T) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: T) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter() -> MaxOfRateLimiter[Any]:
    """client-go's default: max(exponential 5 ms..1000 s, token bucket 10 qps / burst 100)."""
    return MaxOfRateLimiter[Any](
        ItemExponentialFailureRateLimiter[Any](0.005, 1000.0), BucketRateLimiter[Any](10.0, 100)
    )


def default_item_rate_limiter() -> ItemExponentialFailureRateLimiter[Any]:
    """controller-runtime >= 0.23's default: exponential 5 ms..1000 s per item, no bucket."""
    return ItemExponentialFailureRateLimiter[Any](0.005, 1000.0)
