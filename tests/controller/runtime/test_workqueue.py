"""Work-queue semantics: dedup, exclusivity, re-queue after done, delays, shutdown, metrics."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from controller.runtime import metrics
from controller.runtime.ratelimiter import ItemExponentialFailureRateLimiter
from controller.runtime.workqueue import QueueShutDown, WorkQueue


def sample(name: str, queue: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, {"name": queue, "controller": queue})
    return value or 0.0


async def test_add_dedups_while_queued() -> None:
    q: WorkQueue[str] = WorkQueue("wq-dedup", controller="wq-dedup")
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert sample("workqueue_adds_total", "wq-dedup") == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert q.try_get() is None


async def test_add_during_processing_requeues_after_done() -> None:
    q: WorkQueue[str] = WorkQueue(with_metrics=False)
    q.add("a")
    item = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0, "a processing item must not be handed out again"
    assert q.try_get() is None
    q.done(item)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_add_after_keeps_earliest_and_delays() -> None:
    q: WorkQueue[str] = WorkQueue("wq-delay", controller="wq-delay")
    q.add_after("a", 10.0)
    q.add_after("a", 0.05)
    q.add_after("a", 5.0)
    assert q.waiting == 1
    assert q.try_get() is None
    with anyio.fail_after(60):
        start = anyio.current_time()
        assert await q.get() == "a"
        assert anyio.current_time() - start >= 0.04
    assert sample("workqueue_retries_total", "wq-delay") == 3


async def test_add_rate_limited_uses_limiter_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(
        rate_limiter=ItemExponentialFailureRateLimiter(0.01, 1.0), with_metrics=False
    )
    q.add_rate_limited("a")
    q.add_rate_limited("a")
    assert q.num_requeues("a") == 2
    q.forget("a")
    assert q.num_requeues("a") == 0
    with anyio.fail_after(60):
        assert await q.get() == "a"


async def test_get_blocks_until_add() -> None:
    q: WorkQueue[int] = WorkQueue(with_metrics=False)
    got: list[int] = []
    async with anyio.create_task_group() as tg:

        async def getter() -> None:
            got.append(await q.get())

        tg.start_soon(getter)
        await anyio.sleep(0.01)
        assert got == []
        q.add(7)
    assert got == [7]


async def test_shutdown_hands_out_remaining_then_raises_and_ignores_adds() -> None:
    q: WorkQueue[str] = WorkQueue(with_metrics=False)
    q.add("a")
    q.add_after("late", 0.01)
    q.shut_down()
    q.add("b")
    assert await q.get() == "a"
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_wakes_blocked_getters() -> None:
    q: WorkQueue[str] = WorkQueue(with_metrics=False)
    raised: list[bool] = []
    async with anyio.create_task_group() as tg:

        async def getter() -> None:
            try:
                await q.get()
            except QueueShutDown:
                raised.append(True)

        for _ in range(3):
            tg.start_soon(getter)
        await anyio.sleep(0.01)
        q.shut_down()
    assert raised == [True, True, True]


async def test_shutdown_with_drain_waits_for_processing() -> None:
    q: WorkQueue[str] = WorkQueue(with_metrics=False)
    q.add("a")
    item = await q.get()
    drained = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def drain() -> None:
            await q.shut_down_with_drain()
            drained.set()

        tg.start_soon(drain)
        await anyio.sleep(0.02)
        assert not drained.is_set()
        q.done(item)
        with anyio.fail_after(60):
            await drained.wait()


async def test_concurrent_workers_never_share_a_key() -> None:
    """Many workers, few keys, constant re-adds: a key is never processed twice at once."""
    q: WorkQueue[int] = WorkQueue(with_metrics=False)
    active: set[int] = set()
    violations: list[int] = []
    processed: list[int] = []
    rng = random.Random(1)

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            if key in active:
                violations.append(key)
            active.add(key)
            await anyio.sleep(rng.random() / 1000)
            q.add(rng.randrange(5))  # churn, often the same key
            active.discard(key)
            processed.append(key)
            q.done(key)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(worker)
        for i in range(200):
            q.add(i % 5)
            if i % 20 == 0:
                await anyio.lowlevel.checkpoint()
        await anyio.sleep(0.2)
        await q.shut_down_with_drain()
    assert violations == []
    assert len(processed) > 5


class WorkQueueMachine(RuleBasedStateMachine):
    """Model-based check of the queue against a reference of dirty/processing sets."""

    def __init__(self) -> None:
        super().__init__()
        self.q: WorkQueue[int] = WorkQueue(with_metrics=False)
        self.dirty: set[int] = set()
        self.processing: set[int] = set()
        self.handed: list[int] = []

    @rule(item=st.integers(0, 6))
    def add(self, item: int) -> None:
        self.q.add(item)
        self.dirty.add(item)

    @rule()
    def get(self) -> None:
        item = self.q.try_get()
        ready = self.dirty - self.processing
        if item is None:
            assert not ready, "an addable item was ready but not handed out"
            return
        assert item in ready, "handed out an item that was not dirty, or is processing"
        assert item not in self.processing
        self.processing.add(item)
        self.dirty.discard(item)

    @precondition(lambda self: bool(self.processing))  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType, reportUnknownMemberType]
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self.processing)))
        self.q.done(item)
        self.processing.discard(item)

    @invariant()
    def queue_matches_model(self) -> None:
        assert len(self.q) == len(self.dirty - self.processing), "each ready dirty item queued exactly once"
        assert self.q.processing == frozenset(self.processing)


WorkQueueMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
TestWorkQueueProperties = WorkQueueMachine.TestCase
