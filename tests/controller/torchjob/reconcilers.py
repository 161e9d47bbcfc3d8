"""A TorchJob reconciler on the fake API server: setup, one reconcile pass, and what it wrote."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request, Result
from controller.torchjob.reconciler import TorchJobReconciler

JOBS = ("apis/pyroclast.dev/v1alpha1", "torchjobs")


PODS = ("api/v1", "pods")


SERVICES = ("api/v1", "services")


PODGROUPS = ("apis/scheduling.volcano.sh/v1beta1", "podgroups")


EVENTS = ("api/v1", "events")


QUEUES = ("apis/scheduling.volcano.sh/v1beta1", "queues")


WRITES = ("POST", "PUT", "PATCH", "DELETE")


REQ = Request("team-a", "llama")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        """Monotonic seconds that advance with :meth:`tick` (the status batching window)."""
        return (self.now - datetime(2026, 11, 23, tzinfo=UTC)).total_seconds()

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def job_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": "llama", "namespace": "team-a", "creationTimestamp": "2026-11-23T11:59:58Z"},
        "spec": {"image": "img:1", "command": ["-m", "train"], "nodes": {"count": 2}, **spec},
    }


def open_queue(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "Queue",
        "metadata": {"name": name},
        "status": {"state": "Open"},
    }


def setup(**spec: Any) -> tuple[FakeApiServer, TorchJobReconciler, Clock]:
    fake = FakeApiServer()
    fake.put_object(*JOBS, job_body(**spec))
    fake.put_object(*QUEUES, open_queue("default"))
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    clock = Clock()
    reconciler = TorchJobReconciler(manager, clock=clock, monotonic=clock.monotonic)
    manager.add(reconciler.controller())
    return fake, reconciler, clock


def sync(fake: FakeApiServer, reconciler: TorchJobReconciler) -> None:
    """Let the caches catch up with the fake server (the informers' job, done by hand for determinism)."""
    for collection, cache in (
        (JOBS, reconciler.jobs),
        (PODS, reconciler.pods),
        (PODGROUPS, reconciler.podgroups),
        (SERVICES, reconciler.services),
    ):
        fake.sync_cache(collection, cache)


def writes(fake: FakeApiServer, since: int = 0, *, events: bool = False) -> list[tuple[str, str]]:
    # A dry run writes nothing.
    out = [(m, p) for m, p, q in fake.requests[since:] if m in WRITES and "dryRun" not in q]
    return out if events else [(m, p) for m, p in out if "/events" not in p]


def set_pods(
    fake: FakeApiServer, phase: str, *, exit_code: int | None = None, only: str | None = None
) -> None:
    for (ns, name), obj in list(fake.objects.get(PODS, {}).items()):
        if only is not None and name != only:
            continue
        new = copy.deepcopy(obj)
        new["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}
        if exit_code is not None:
            new["status"]["containerStatuses"] = [
                {"name": "trainer", "state": {"terminated": {"exitCode": exit_code}}}
            ]
        fake.put_object(*PODS, new)
        assert ns == "team-a"


def job_status(fake: FakeApiServer) -> dict[str, Any]:
    return fake.objects[JOBS][("team-a", "llama")].get("status") or {}


async def reconcile(reconciler: TorchJobReconciler) -> Result:
    """One reconcile, then the Events it recorded sent (as the manager's recorder does, in the background)."""
    result = await reconciler.reconcile(REQ)
    await reconciler.recorder.flush()
    return result


async def step(fake: FakeApiServer, reconciler: TorchJobReconciler) -> None:
    sync(fake, reconciler)
    await reconcile(reconciler)


async def eventually(pred: Callable[[], bool], within: float = 60.0) -> None:  # a hang guard only
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.01)


def phase_of(fake: FakeApiServer) -> str | None:
    return job_status(fake).get("phase")


def sample(name: str, **labels: str) -> float:
    from controller.runtime.metrics import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0
