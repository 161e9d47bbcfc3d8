"""Controller result semantics, isolation, owner mapping and per-key exclusivity (fake API server)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio
import pytest

from controller.runtime import metrics
from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.handler import controller_reference
from controller.runtime.manager import Manager
from controller.runtime.objects import JsonObject
from controller.runtime.predicate import content_changed, generation_changed
from controller.runtime.ratelimiter import ItemExponentialFailureRateLimiter
from controller.runtime.reconcile import Request, Result, TerminalError
from controller.runtime.resource import CONFIG_MAPS, SECRETS

API = "api/v1"


def cm(name: str, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {}}


def total(controller: str, result: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": controller, "result": result}
        )
        or 0.0
    )


def counter(name: str, controller: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, {"controller": controller}) or 0.0


async def eventually(pred: Callable[[], bool], within: float = 60.0) -> None:  # a hang guard only
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(manager: Manager) -> AsyncGenerator[Manager]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: manager.elected.is_set())
        yield manager
        manager.stop()


def new_manager(fake: FakeApiServer) -> Manager:
    return Manager(Client(fake), metrics_bind_address="0", sync_period=None)


async def test_result_semantics_and_metrics() -> None:
    fake = FakeApiServer()
    for name in ("ok", "err", "term", "after", "requeue"):
        fake.put_object(API, "configmaps", cm(name))
    calls: dict[str, int] = {}

    async def reconcile(req: Request) -> Result | None:
        calls[req.name] = calls.get(req.name, 0) + 1
        n = calls[req.name]
        if req.name == "err" and n < 3:
            raise RuntimeError("transient")
        if req.name == "term":
            raise TerminalError("bad spec")
        if req.name == "after" and n == 1:
            return Result(requeue_after=0.05)
        if req.name == "requeue" and n == 1:
            return Result(requeue=True)
        return None

    name = "results"
    manager = new_manager(fake)
    ctrl = manager.add(
        Controller(
            reconcile,
            for_=CONFIG_MAPS,
            name=name,
            rate_limiter=ItemExponentialFailureRateLimiter(0.01, 1.0),
        )
    )
    async with running(manager):
        await eventually(
            lambda: calls.get("err") == 3 and calls.get("after") == 2 and calls.get("requeue") == 2
        )
        await anyio.sleep(0.1)
    assert calls == {"ok": 1, "err": 3, "term": 1, "after": 2, "requeue": 2}, (
        "terminal errors are not retried"
    )
    assert total(name, "error") == 3  # 2 transient + 1 terminal
    assert total(name, "requeue_after") == 1
    assert total(name, "requeue") == 1
    assert total(name, "success") == 4
    assert counter("controller_runtime_terminal_reconcile_errors_total", name) == 1
    assert counter("controller_runtime_reconcile_errors_total", name) == 3
    assert ctrl.queue.num_requeues(Request("default", "err")) == 0, "success forgets the failures"
    hist = metrics.REGISTRY.get_sample_value(
        "controller_runtime_reconcile_time_seconds_count", {"controller": name}
    )
    assert hist == 9


async def test_reconcile_timeout_counts_and_retries() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("slow"))
    calls: list[int] = []

    async def reconcile(req: Request) -> None:
        calls.append(1)
        if len(calls) == 1:
            await anyio.sleep(10)

    manager = new_manager(fake)
    manager.add(
        Controller(
            reconcile,
            for_=CONFIG_MAPS,
            name="timeouts",
            reconcile_timeout=0.05,
            rate_limiter=ItemExponentialFailureRateLimiter(0.01, 1.0),
        )
    )
    async with running(manager):
        await eventually(lambda: len(calls) == 2)
    assert counter("controller_runtime_reconcile_timeouts_total", "timeouts") == 1


async def test_owned_objects_enqueue_their_controller_owner() -> None:
    fake = FakeApiServer()
    owner = fake.put_object(API, "configmaps", cm("owner"))
    seen: list[Request] = []

    async def reconcile(req: Request) -> None:
        seen.append(req)

    manager = new_manager(fake)
    manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="owners", owns=[SECRETS]))
    async with running(manager):
        await eventually(lambda: len(seen) == 1)
        child = {
            "metadata": {
                "name": "child",
                "namespace": "default",
                "ownerReferences": [controller_reference(owner)],
            }
        }
        fake.put_object(API, "secrets", child)
        stranger = {
            "metadata": {
                "name": "other",
                "namespace": "default",
                "ownerReferences": [{**controller_reference(owner), "controller": False}],
            }
        }
        fake.put_object(API, "secrets", stranger)
        await eventually(lambda: len(seen) == 2)
        await anyio.sleep(0.05)
    assert seen == [Request("default", "owner")] * 2, "only the controller owner reference maps"


async def test_a_request_enqueued_through_the_controller_is_reconciled_once_per_ask_while_queued() -> None:
    fake = FakeApiServer()
    seen: list[Request] = []

    async def reconcile(req: Request) -> None:
        seen.append(req)

    controller = Controller(reconcile, for_=CONFIG_MAPS, name="outside")
    controller.enqueue(Request("default", "from-outside"))
    controller.enqueue(Request("default", "from-outside"))
    assert len(controller.queue) == 1, "asked twice before a worker took it: queued once"
    manager = new_manager(fake)
    manager.add(controller)
    async with running(manager):
        await eventually(lambda: len(seen) == 1)
        controller.enqueue(Request("default", "from-outside"))
        await eventually(lambda: len(seen) == 2)
    assert seen == [Request("default", "from-outside")] * 2


async def test_predicates_filter_status_only_updates() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", {**cm("p"), "spec": {"x": 1}})
    calls: list[int] = []

    async def reconcile(req: Request) -> None:
        calls.append(1)

    manager = new_manager(fake)
    manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="preds", predicates=[generation_changed]))
    client = manager.client
    async with running(manager):
        await eventually(lambda: len(calls) == 1)
        await client.patch_status(CONFIG_MAPS, "p", {"status": {"phase": "Done"}}, "default")
        await anyio.sleep(0.1)
        assert len(calls) == 1, "status-only write (same generation) filtered"
        await client.patch(CONFIG_MAPS, "p", {"spec": {"x": 2}}, "default")
        await eventually(lambda: len(calls) == 2)


async def test_owns_predicates_filter_only_the_owned_kinds_events() -> None:
    fake = FakeApiServer()
    owner = fake.put_object(API, "configmaps", cm("owner"))
    owned = {"name": "child", "namespace": "default", "ownerReferences": [controller_reference(owner)]}
    child: JsonObject = {"metadata": owned, "data": {"k": "1"}}
    fake.put_object(API, "secrets", child)
    seen: list[Request] = []

    async def reconcile(req: Request) -> None:
        seen.append(req)

    manager = new_manager(fake)

    def without_annotations(obj: JsonObject) -> JsonObject:
        meta = {k: v for k, v in obj["metadata"].items() if k != "annotations"}
        return {**obj, "metadata": meta}

    manager.informer(SECRETS, transform=without_annotations)  # the reconciler reads no annotations
    owns = Controller(
        reconcile, for_=CONFIG_MAPS, name="owned", owns=[SECRETS], owns_predicates=[content_changed]
    )
    manager.add(owns)
    client = manager.client
    async with running(manager):
        await eventually(lambda: len(seen) >= 1)
        await anyio.sleep(0.1)
        before = len(seen)
        await client.patch(SECRETS, "child", {"metadata": {"annotations": {"a": "b"}}}, "default")
        await client.patch(CONFIG_MAPS, "owner", {"data": {"k": "2"}}, "default")  # the for_ kind: unfiltered
        await eventually(lambda: len(seen) == before + 1)
        await anyio.sleep(0.1)
        assert len(seen) == before + 1, "the owned update that changed nothing cached asked for no reconcile"
        await client.patch(SECRETS, "child", {"data": {"k": "3"}}, "default")
        await eventually(lambda: len(seen) == before + 2)


async def test_many_workers_never_reconcile_one_key_concurrently() -> None:
    fake = FakeApiServer()
    for i in range(4):
        fake.put_object(API, "configmaps", cm(f"k{i}"))
    running_now: set[str] = set()
    overlaps: list[str] = []
    count = 0

    async def reconcile(req: Request) -> Result:
        nonlocal count
        if req.name in running_now:
            overlaps.append(req.name)
        running_now.add(req.name)
        await anyio.sleep(0.002)
        running_now.discard(req.name)
        count += 1
        return Result(requeue_after=0.001)

    manager = new_manager(fake)
    ctrl = manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="exclusive", workers=8))
    async with running(manager):
        for _ in range(50):
            for i in range(4):
                fake.put_object(API, "configmaps", cm(f"k{i}"))
            await anyio.sleep(0.003)
        await eventually(lambda: count > 100)
    assert overlaps == []
    assert ctrl.max_active_per_key == 1


async def test_duplicate_controller_names_rejected() -> None:
    manager = new_manager(FakeApiServer())

    async def noop(req: Request) -> None:
        return None

    manager.add(Controller(noop, for_=CONFIG_MAPS, name="dup"))
    with pytest.raises(ValueError, match="unique"):
        manager.add(Controller(noop, for_=CONFIG_MAPS, name="dup"))
