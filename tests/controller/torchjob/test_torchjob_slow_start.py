"""The reconciler's creates and deletes: the plan's order kept, a run of pod creates in parallel slow-start
batches, a run of pod deletes (a gang restart) all at once."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.errors import AlreadyExists, ApiError, Forbidden, ServerError
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Result
from controller.runtime.resource import Resource
from controller.torchjob.expectations import Expectations
from controller.torchjob.reconciler import TorchJobReconciler, slow_start, vetted_batches
from tests.controller.torchjob.reconcilers import (
    JOBS,
    PODS,
    QUEUES,
    REQ,
    Clock,
    job_body,
    job_status,
    open_queue,
    set_pods,
    sync,
)


class RecordingExpectations(Expectations):
    def __init__(self) -> None:
        super().__init__()
        self.creates: list[tuple[str, str]] = []
        self.deletes: list[tuple[str, str]] = []

    def created(self, job: str, kind: str, name: str) -> None:
        self.creates.append((kind, name))
        super().created(job, kind, name)

    def deleted(self, job: str, kind: str, uid: str) -> None:
        self.deletes.append((kind, uid))
        super().deleted(job, kind, uid)


class Trace:
    """Wraps the client's create: logs when each create starts and ends; refuses some names."""

    def __init__(self, client: Client, refuse: dict[str, ApiError] | None = None) -> None:
        self.create = client.create
        self.refuse = refuse or {}
        self.log: list[tuple[str, str, str]] = []  # (start|end, kind, name)

    async def __call__(
        self, resource: Resource, obj: JsonObject, namespace: str | None = None, *, dry_run: bool = False
    ) -> JsonObject:
        if dry_run:  # a new job's first worker, checked before anything is created: no create to trace
            return await self.create(resource, obj, namespace, dry_run=True)
        what = (resource.kind, str(obj["metadata"].get("name") or obj["metadata"].get("generateName")))
        self.log.append(("start", *what))
        try:
            await anyio.sleep(0.01)  # parallel creates all start before any ends
            if (error := self.refuse.get(what[1])) is not None:
                raise error
            return await self.create(resource, obj, namespace)
        finally:
            self.log.append(("end", *what))

    def pod_batches(self) -> list[list[str]]:
        """Pod creates grouped by the batch they ran in: starts with no end between them."""
        batches: list[list[str]] = []
        previous = "end"
        for edge, kind, name in self.log:
            if kind == "Pod" and edge == "start":
                if previous != "start":
                    batches.append([])
                batches[-1].append(name)
            previous = edge
        return batches

    def position(self, edge: str, kind: str, name: str) -> int:
        return self.log.index((edge, kind, name))


def setup(
    count: int, refuse: dict[str, ApiError] | None = None, *, new: bool = False, **spec: Any
) -> tuple[FakeApiServer, TorchJobReconciler, Trace, RecordingExpectations]:
    """A job whose gang is made again after a restart (no dry run vouches for its pods: slow start), or with
    `new` one never started (its first worker is dry-run first)."""
    fake = FakeApiServer()
    body = job_body(**{"nodes": {"count": count}, **spec})
    if not new:
        body["status"] = {"phase": "Restarting", "failureRestarts": 1}
    fake.put_object(*JOBS, body)
    fake.put_object(*QUEUES, open_queue("default"))
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    clock = Clock()
    expectations = RecordingExpectations()
    reconciler = TorchJobReconciler(
        manager, clock=clock, monotonic=clock.monotonic, expectations=expectations
    )
    trace = Trace(reconciler.client, refuse)
    reconciler.client.create = trace  # type: ignore[method-assign]
    sync(fake, reconciler)
    return fake, reconciler, trace, expectations


def workers(*indexes: int) -> list[str]:
    return [f"llama-worker-{i}" for i in indexes]


def test_vetted_batches_are_the_first_alone_then_the_rest() -> None:
    assert list(vetted_batches(0)) == []
    assert list(vetted_batches(1)) == [1]
    assert list(vetted_batches(8)) == [1, 7]


async def test_a_new_jobs_pods_after_its_dry_run_go_first_alone_then_all_at_once() -> None:
    fake, reconciler, trace, _ = setup(8, new=True)
    await reconciler.reconcile(REQ)
    assert trace.pod_batches() == [workers(0), workers(1, 2, 3, 4, 5, 6, 7)]
    assert len(fake.objects[PODS]) == 8


async def test_a_new_elastic_jobs_store_pod_still_comes_up_alone_first() -> None:
    _, reconciler, trace, _ = setup(4, new=True, nodes={"count": 4, "min": 2, "max": 4})
    await reconciler.reconcile(REQ)
    assert trace.pod_batches() == [["llama-rendezvous"], workers(0, 1, 2, 3)]


def test_slow_start_batches_double_and_cover_exactly() -> None:
    assert list(slow_start(0)) == []
    assert list(slow_start(1)) == [1]
    assert list(slow_start(7)) == [1, 2, 4]
    assert list(slow_start(8)) == [1, 2, 4, 1]
    assert list(slow_start(20)) == [1, 2, 4, 8, 5]
    assert list(slow_start(10, initial=3)) == [3, 6, 1]
    with pytest.raises(ValueError, match="first slow-start batch must hold >= 1"):
        list(slow_start(4, initial=0))


async def test_podgroup_and_service_first_then_pods_in_batches_of_1_2_4() -> None:
    fake, reconciler, trace, expectations = setup(8)
    await reconciler.reconcile(REQ)
    starts = [(kind, name) for edge, kind, name in trace.log if edge == "start"]
    assert [kind for kind, _ in starts] == ["PodGroup", "Service"] + ["Pod"] * 8
    first_pod = trace.position("start", "Pod", "llama-worker-0")
    for kind, name in starts[:2]:  # the PodGroup and the Service end before any pod starts
        assert trace.position("end", kind, name) < first_pod
    assert trace.pod_batches() == [workers(0), workers(1, 2), workers(3, 4, 5, 6), workers(7)]
    assert len(fake.objects[PODS]) == 8
    assert [k for k, _ in expectations.creates] == ["PodGroup"] + ["Pod"] * 8  # the shared Service: none


async def test_an_elastic_jobs_store_podgroup_precedes_every_pod() -> None:
    _, reconciler, trace, _ = setup(4, nodes={"count": 4, "min": 2, "max": 4})
    await reconciler.reconcile(REQ)
    first_pod = next(i for i, (edge, kind, _) in enumerate(trace.log) if (edge, kind) == ("start", "Pod"))
    podgroups = [name for edge, kind, name in trace.log if (edge, kind) == ("start", "PodGroup")]
    assert len(podgroups) == 2  # the gang's and the store's
    for name in podgroups:
        assert trace.position("end", "PodGroup", name) < first_pod
    # The store pod comes first in the plan: alone in the first batch, up before any worker dials it.
    assert trace.pod_batches() == [["llama-rendezvous"], workers(0, 1), workers(2, 3)]


async def test_a_failing_batch_ends_the_run_and_only_successes_are_expected() -> None:
    refused = Forbidden(403, "Forbidden", 'exceeded quota: "compute"')
    fake, reconciler, trace, expectations = setup(8, refuse={"llama-worker-1": refused})
    # A refusal is the user's to fix: shown on the job (tests/controller/torchjob/test_torchjob_refusal.py),
    # retried with the queue's backoff, never raised.
    assert await reconciler.reconcile(REQ) == Result(requeue=True)
    assert job_status(fake)["phase"] == "CreateFailed"
    assert trace.pod_batches() == [workers(0), workers(1, 2)]  # worker-2 finished, 3..7 never attempted
    assert sorted(n for _, n in fake.objects[PODS]) == workers(0, 2)
    assert sorted(n for k, n in expectations.creates if k == "Pod") == workers(0, 2)


async def test_the_first_error_of_a_batch_in_plan_order_is_raised() -> None:
    first = ServerError(500, "InternalError", "etcd timeout")
    second = Forbidden(403, "Forbidden", "quota")
    _, reconciler, trace, expectations = setup(8, refuse={"llama-worker-3": first, "llama-worker-5": second})
    with pytest.raises(ServerError) as raised:
        await reconciler.reconcile(REQ)
    assert raised.value is first
    assert trace.pod_batches() == [workers(0), workers(1, 2), workers(3, 4, 5, 6)]
    assert sorted(n for k, n in expectations.creates if k == "Pod") == workers(0, 1, 2, 4, 6)


async def test_already_exists_is_no_error_and_not_expected() -> None:
    exists = AlreadyExists(409, "AlreadyExists", 'pods "llama-worker-1" already exists')
    fake, reconciler, trace, expectations = setup(4, refuse={"llama-worker-1": exists})
    await reconciler.reconcile(REQ)
    assert trace.pod_batches() == [workers(0), workers(1, 2), workers(3)]
    assert sorted(n for _, n in fake.objects[PODS]) == workers(0, 2, 3)
    assert sorted(n for k, n in expectations.creates if k == "Pod") == workers(0, 2, 3)


class DeleteTrace:
    """Wraps the client's delete: logs when each delete starts and ends; fails some names."""

    def __init__(self, client: Client, fail: dict[str, ApiError]) -> None:
        self.delete = client.delete
        self.fail = fail
        self.log: list[tuple[str, str]] = []  # (start|end, name)

    async def __call__(
        self, resource: Resource, name: str, namespace: str | None = None, **options: Any
    ) -> Any:
        self.log.append(("start", name))
        try:
            await anyio.sleep(0.01)  # parallel deletes all start before any ends
            if (error := self.fail.get(name)) is not None:
                raise error
            return await self.delete(resource, name, namespace, **options)
        finally:
            self.log.append(("end", name))


async def test_a_gang_restart_deletes_every_member_at_once_and_raises_a_failure_after_all_returned() -> None:
    fake, reconciler, _, expectations = setup(8, new=True)
    await reconciler.reconcile(REQ)
    set_pods(fake, "Running")
    sync(fake, reconciler)
    await reconciler.reconcile(REQ)
    set_pods(fake, "Failed", exit_code=1, only="llama-worker-0")
    sync(fake, reconciler)
    uids = {name: obj["metadata"]["uid"] for (_, name), obj in fake.objects[PODS].items()}
    failure = ServerError(500, "InternalError", "etcd timeout")
    trace = DeleteTrace(reconciler.client, fail={"llama-worker-3": failure})
    reconciler.client.delete = trace  # type: ignore[method-assign]
    with pytest.raises(ServerError) as raised:
        await reconciler.reconcile(REQ)
    assert raised.value is failure
    pods = [name for _, name in trace.log if name.startswith("llama-worker-")]
    starts = [name for edge, name in trace.log if edge == "start"]
    assert sorted(set(pods)) == workers(0, 1, 2, 3, 4, 5, 6, 7)
    assert trace.log[: len(starts)] == [("start", n) for n in starts]  # every delete began before any ended
    assert sorted(n for _, n in fake.objects[PODS]) == workers(3)
    assert sorted(expectations.deletes) == sorted(("Pod", uids[n]) for n in workers(0, 1, 2, 4, 5, 6, 7))
