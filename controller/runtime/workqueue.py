"""A deduplicating, rate-limited, delaying work queue with client-go's semantics.

Invariants (tested with Hypothesis in ``tests/controller/runtime/test_workqueue_properties.py``):

* **Dedup.** An item is queued at most once: adding a *dirty* item (queued, not yet handed
  out) is a no-op, and ``workqueue_adds_total``/depth count only non-duplicate adds.
* **Exclusivity.** An item handed out by :meth:`WorkQueue.get` is in *processing* until
  :meth:`WorkQueue.done`; it is never handed out again meanwhile, so one key is never
  processed by two workers at once.
* **No lost adds.** Adding an item while it is processing marks it dirty; :meth:`done` then
  queues it again.
* **Delays.** :meth:`add_after` keeps the earliest ready time per item;
  :meth:`add_rate_limited` delays by the rate limiter's ``when``; :meth:`forget` resets it.
* **Shutdown.** After :meth:`shut_down` adds are ignored, queued items are still handed out, and
  ``get`` raises :class:`QueueShutDown` once empty; :meth:`shut_down_with_drain` also waits until
  nothing is processing.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import anyio

from controller.runtime import metrics
from controller.runtime.ratelimiter import RateLimiter, default_controller_rate_limiter

T = TypeVar("T", bound=Hashable)


class QueueShutDown(Exception):
    """The queue is shut down and empty."""


class WorkQueue(Generic[T]):
    """Work queue of hashable items (usually :class:`~controller.runtime.reconcile.Request`).

    ``name``/``controller`` label the ``workqueue_*`` metrics. ``clock`` must agree with the
    event loop's clock (monotonic) because delayed items are awaited with it.
    """

    def __init__(
        self,
        name: str = "",
        *,
        controller: str = "",
        rate_limiter: RateLimiter[T] | None = None,
        clock: Callable[[], float] = time.monotonic,
        with_metrics: bool = True,
    ):
        self.name = name
        self.rate_limiter: RateLimiter[T] = rate_limiter or default_controller_rate_limiter()
        self._clock = clock
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._ready_at: dict[T, float] = {}
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._added_at: dict[T, float] = {}
        self._started_at: dict[T, float] = {}
        self._shutting_down = False
        self._changed = anyio.Event()
        self._waiters = 0
        self._metrics = with_metrics
        if with_metrics:
            labels = {"name": name, "controller": controller}
            self._m_depth = metrics.WORKQUEUE_DEPTH.labels(priority="", **labels)
            self._m_adds = metrics.WORKQUEUE_ADDS.labels(**labels)
            self._m_queue_duration = metrics.WORKQUEUE_QUEUE_DURATION.labels(**labels)
            self._m_work_duration = metrics.WORKQUEUE_WORK_DURATION.labels(**labels)
            self._m_unfinished = metrics.WORKQUEUE_UNFINISHED_WORK.labels(**labels)
            self._m_longest = metrics.WORKQUEUE_LONGEST_RUNNING.labels(**labels)
            self._m_retries = metrics.WORKQUEUE_RETRIES.labels(**labels)

    def _notify(self) -> None:
        if self._waiters:  # events are only worth creating when someone waits
            self._changed.set()
            self._changed = anyio.Event()

    def __len__(self) -> int:
        """Items queued and ready (not processing, not waiting for a delay)."""
        return len(self._queue)

    @property
    def processing(self) -> frozenset[T]:
        """Items handed out and not yet done."""
        return frozenset(self._processing)

    @property
    def waiting(self) -> int:
        """Items waiting for a delay to pass."""
        return len(self._ready_at)

    def add(self, item: T) -> None:
        """Queue ``item`` unless it is already queued; if it is processing, queue it after ``done``."""
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if self._metrics:
            self._m_adds.inc()
        if item in self._processing:
            return
        self._push(item)

    def _push(self, item: T) -> None:
        self._queue.append(item)
        self._added_at.setdefault(item, self._clock())
        if self._metrics:
            self._m_depth.inc()
        self._notify()

    def add_after(self, item: T, delay: float) -> None:
        """Add ``item`` once ``delay`` seconds have passed; the earliest pending time wins."""
        if self._shutting_down:
            return
        if self._metrics:
            self._m_retries.inc()
        if delay <= 0:
            self.add(item)
            return
        ready = self._clock() + delay
        current = self._ready_at.get(item)
        if current is not None and current <= ready:
            return
        self._ready_at[item] = ready
        heapq.heappush(self._heap, (ready, next(self._seq), item))
        self._notify()

    def add_rate_limited(self, item: T) -> None:
        """Add ``item`` after the rate limiter's delay (one more recorded failure)."""
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """Reset ``item``'s failure count in the rate limiter (still call :meth:`done`)."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        """Failures of ``item`` the rate limiter remembers."""
        return self.rate_limiter.num_requeues(item)

    def _promote_ready(self) -> float | None:
        """Move due delayed items into the queue; return seconds until the next one, if any."""
        now = self._clock()
        while self._heap:
            ready, _, item = self._heap[0]
            if self._ready_at.get(item) != ready:
                heapq.heappop(self._heap)  # superseded by an earlier time, or already added
                continue
            if ready > now:
                return ready - now
            heapq.heappop(self._heap)
            del self._ready_at[item]
            self.add(item)
        return None

    def try_get(self) -> T | None:
        """Hand out the next ready item without waiting, or ``None``."""
        self._promote_ready()
        if not self._queue:
            return None
        item = self._queue.popleft()
        now = self._clock()
        self._processing.add(item)
        self._dirty.discard(item)
        self._started_at[item] = now
        added = self._added_at.pop(item, now)
        if self._metrics:
            self._m_depth.dec()
            self._m_queue_duration.observe(now - added)
        return item

    async def get(self) -> T:
        """Wait for and hand out the next item; raises :class:`QueueShutDown` when shut down and empty."""
        while True:
            item = self.try_get()
            if item is not None:
                return item
            if self._shutting_down:
                raise QueueShutDown
            wait = self._promote_ready()
            changed = self._changed
            self._waiters += 1
            try:
                with anyio.move_on_after(wait if wait is not None else float("inf")):
                    await changed.wait()
            finally:
                self._waiters -= 1

    def done(self, item: T) -> None:
        """Mark ``item`` finished; queue it again if it was added while processing."""
        self._processing.discard(item)
        started = self._started_at.pop(item, None)
        if self._metrics and started is not None:
            self._m_work_duration.observe(self._clock() - started)
        if item in self._dirty:
            self._push(item)
        else:
            self._notify()

    def update_unfinished_work(self) -> None:
        """Refresh the unfinished-work and longest-running gauges (call every ~500 ms)."""
        if not self._metrics:
            return
        now = self._clock()
        ages = [now - t for t in self._started_at.values()]
        self._m_unfinished.set(sum(ages))
        self._m_longest.set(max(ages, default=0.0))

    def shut_down(self) -> None:
        """Stop accepting adds and wake all waiters; delayed items are dropped."""
        self._shutting_down = True
        self._heap.clear()
        self._ready_at.clear()
        self._notify()

    async def shut_down_with_drain(self) -> None:
        """:meth:`shut_down`, then wait until every handed-out item is done."""
        self.shut_down()
        while self._processing:
            changed = self._changed
            self._waiters += 1
            try:
                await changed.wait()
            finally:
                self._waiters -= 1
