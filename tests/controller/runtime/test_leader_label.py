"""The manager's on-started-leading hook, and the leader labelling its own pod (in-memory API server)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from controller.runtime import metrics
from controller.runtime.backoff import Backoff
from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.leaderlabel import LeaderLabel, OwnPod, label_patch
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request
from controller.runtime.resource import CONFIG_MAPS
from pyroclast.operator import LEADER_LABEL, label_leader_pod
from tests.controller.runtime.waiting import eventually
from tests.managers import contender, run_each
from tests.virtual_time import run_virtual

API = "api/v1"
KEY = "example.dev/leader"


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ops", "labels": {"app": "op", **(labels or {})}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {}}


def labels_of(fake: FakeApiServer, name: str) -> dict[str, str]:
    return dict(fake.objects[(API, "pods")][("ops", name)]["metadata"].get("labels") or {})


def count(action: str, result: str) -> float:
    labels = {"action": action, "result": result}
    return metrics.REGISTRY.get_sample_value("leader_election_pod_label_total", labels) or 0.0


def elected_manager(fake: FakeApiServer, identity: str) -> Manager:
    timings = {"lease_duration": 0.6, "renew_deadline": 0.4, "retry_period": 0.1}
    return contender(Client(fake), "op", "ops", identity, sync_period=None, **timings)


# --- the hook -----------------------------------------------------------------------------------------------


async def test_hooks_run_once_on_leading_before_the_controllers_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    order: list[str] = []

    async def reconcile(req: Request) -> None:
        order.append("reconcile")

    def broken() -> None:
        order.append("broken")
        raise RuntimeError("hook bug")

    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="hook-order"))
    manager.on_started_leading(broken)
    manager.on_started_leading(lambda: order.append("hook"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: "reconcile" in order)
        manager.stop()
    assert order == ["broken", "hook", "reconcile"]
    assert "on-started-leading hook" in caplog.text
    assert "hook bug" in caplog.text


def test_only_the_leader_runs_its_hook_and_the_next_leader_runs_its_own() -> None:
    async def main() -> None:
        fake = FakeApiServer()
        managers = {i: elected_manager(fake, i) for i in ("m0", "m1")}
        called: list[str] = []
        for identity, m in managers.items():
            m.on_started_leading(lambda identity=identity: called.append(identity))
        async with anyio.create_task_group() as tg:
            scopes = run_each(tg, managers)
            await eventually(lambda: len(called) == 1)
            await anyio.sleep(2.0)  # many renew periods: the standby's hook is not called
            assert len(called) == 1
            leader = called[0]
            other = "m1" if leader == "m0" else "m0"
            scopes[leader].cancel()
            await eventually(lambda: len(called) == 2)
            assert called == [leader, other]
            managers[other].stop()

    run_virtual(main)


# --- the label ----------------------------------------------------------------------------------------------


def test_own_pod_from_the_downward_api_env() -> None:
    assert OwnPod.from_env({}, lambda: "sa-ns") is None
    assert OwnPod.from_env({"POD_NAME": " ", "POD_NAMESPACE": "ops"}, lambda: "sa-ns") is None
    assert OwnPod.from_env({"POD_NAME": "op-1"}, lambda: "sa-ns") == OwnPod("sa-ns", "op-1")
    assert OwnPod.from_env({"POD_NAME": "op-1", "POD_NAMESPACE": "ops"}, lambda: "sa-ns") == OwnPod(
        "ops", "op-1"
    )


def test_the_patch_sets_or_removes_only_that_label() -> None:
    assert label_patch(KEY, "true") == {"metadata": {"labels": {KEY: "true"}}}
    assert label_patch(KEY, None) == {"metadata": {"labels": {KEY: None}}}


async def test_a_stale_label_is_cleared_at_start_and_set_only_on_leading() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "pods", pod("op-1", {KEY: "true"}))  # left by this pod's previous container
    label = LeaderLabel(Client(fake), OwnPod("ops", "op-1"), KEY)
    cleared, set_ = count("clear", "success"), count("set", "success")
    async with anyio.create_task_group() as tg:
        tg.start_soon(label.run)
        await eventually(lambda: count("clear", "success") == cleared + 1)
        assert labels_of(fake, "op-1") == {"app": "op"}
        await anyio.sleep(0.05)
        assert labels_of(fake, "op-1") == {"app": "op"}, "not labelled before leading"
        label.started_leading()
    assert label.labelled
    assert labels_of(fake, "op-1") == {"app": "op", KEY: "true"}
    assert count("set", "success") == set_ + 1
    patches = [r for r in fake.requests if r[0] == "PATCH"]
    assert [p[1] for p in patches] == ["/api/v1/namespaces/ops/pods/op-1"] * 2


def test_refused_patches_are_retried_with_backoff_until_they_succeed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        fake.put_object(API, "pods", pod("op-1"))
        label = LeaderLabel(
            Client(fake), OwnPod("ops", "op-1"), KEY, backoff=lambda: Backoff(initial=1.0, jitter=0.0)
        )
        label.started_leading()
        errors, set_errors = count("clear", "error"), count("set", "error")
        fake.fail_next(403, count=3, methods=("PATCH",))  # the Role lacks patch on pods, then it is fixed
        start = anyio.current_time()
        with anyio.fail_after(60):
            await label.run()
        waited = anyio.current_time() - start
        assert label.labelled
        assert labels_of(fake, "op-1") == {"app": "op", KEY: "true"}
        assert count("clear", "error") == errors + 3
        assert count("set", "error") == set_errors
        assert waited >= 1.0 + 2.0 + 4.0  # backed off 1, 2, 4 s (virtual clock)
        assert [r[0] for r in fake.requests] == ["PATCH"] * 5

    run_virtual(main)
    assert "could not patch the leader label on own pod; retrying" in caplog.text


def test_a_missing_pod_is_reported_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        label = LeaderLabel(Client(fake), OwnPod("ops", "nope"), KEY)
        label.started_leading()
        before = count("clear", "not_found")
        with anyio.fail_after(60):
            await label.run()
        assert not label.labelled
        assert count("clear", "not_found") == before + 1
        assert [r[0] for r in fake.requests] == ["PATCH"]

    run_virtual(main)
    assert "set POD_NAME and POD_NAMESPACE from the downward API" in caplog.text


# --- the operator's wiring ----------------------------------------------------------------------------------


def test_only_the_leaders_pod_carries_the_label_and_the_next_leader_labels_its_own() -> None:
    async def main() -> None:
        fake = FakeApiServer()
        for name in ("op-a", "op-b"):
            fake.put_object(API, "pods", pod(name))
        managers = {i: elected_manager(fake, i) for i in ("a", "b")}
        labels = {
            i: label_leader_pod(m, {"POD_NAME": f"op-{i}", "POD_NAMESPACE": "ops"})
            for i, m in managers.items()
        }
        assert all(label is not None for label in labels.values())

        def labelled() -> list[str]:
            return [i for i in managers if labels_of(fake, f"op-{i}").get(LEADER_LABEL) == "true"]

        async with anyio.create_task_group() as tg:
            scopes = run_each(tg, managers)
            await eventually(lambda: len(labelled()) == 1)
            await anyio.sleep(2.0)
            leader = next(i for i, m in managers.items() if m.is_leader)
            assert labelled() == [leader]
            other = "b" if leader == "a" else "a"
            scopes[leader].cancel()
            await eventually(lambda: other in labelled())
            # the old leader's pod keeps its label until its container restarts, which clears it
            restarted = elected_manager(fake, f"{leader}-restarted")
            label_leader_pod(restarted, {"POD_NAME": f"op-{leader}", "POD_NAMESPACE": "ops"})
            tg.start_soon(restarted.run)
            await eventually(lambda: labelled() == [other])
            await anyio.sleep(1.0)
            assert labelled() == [other]
            assert not restarted.is_leader
            restarted.stop()
            managers[other].stop()

    run_virtual(main)


def test_no_label_without_pod_name_or_without_leader_election(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pyroclast.operator")
    fake = FakeApiServer()
    assert label_leader_pod(elected_manager(fake, "x"), {"POD_NAMESPACE": "ops"}) is None
    assert "POD_NAME is not set" in caplog.text
    alone = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    assert label_leader_pod(alone, {"POD_NAME": "op-1", "POD_NAMESPACE": "ops"}) is None
    assert alone._runnables == []  # pyright: ignore[reportPrivateUsage]
