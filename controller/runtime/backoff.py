"""Jittered exponential backoff for list/watch retries (client-go reflector numbers)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """``initial * factor**n`` capped at ``cap``, plus up to ``jitter`` times that, reset when healthy.

    Defaults are client-go's reflector: 800 ms, x2, cap 30 s, jitter 1.0, reset after 2 min
    without a backoff.
    """

    def __init__(
        self,
        initial: float = 0.8,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ):
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.reset_after = reset_after
        self._clock = clock
        self._rng = rng
        self._current = initial
        self._last: float | None = None

    def next(self) -> float:
        """The next delay to sleep, in seconds."""
        now = self._clock()
        if self._last is not None and now - self._last > self.reset_after:
            self._current = self.initial
        self._last = now
        delay = self._current
        self._current = min(self._current * self.factor, self.cap)
        return delay + delay * self.jitter * self._rng()

    def reset(self) -> None:
        """Back to the initial delay."""
        self._current = self.initial
        self._last = None
