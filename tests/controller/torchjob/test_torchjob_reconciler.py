"""The TorchJob reconciler's I/O on the fake API server: write order, minimal writes, expectations, events."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest

from api import TorchJob
from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request
from controller.torchjob.labels import ATTEMPT_LABEL
from controller.torchjob.reconciler import TorchJobReconciler
from tests.controller.torchjob.reconcilers import (
    EVENTS,
    JOBS,
    PODGROUPS,
    PODS,
    QUEUES,
    Clock,
    eventually,
    job_body,
    job_status,
    open_queue,
    phase_of,
    reconcile,
    sample,
    set_pods,
    setup,
    step,
    sync,
    writes,
)


@pytest.fixture(autouse=True)
def reconciles_leave_caches_and_parsed_jobs_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reconcile in this module is checked: it reads cached objects without copying them, so it must
    leave each one as it found it; and the parsed job it reuses must still equal a fresh parse."""
    reconcile = TorchJobReconciler.reconcile

    async def checked(self: TorchJobReconciler, request: Request) -> Any:
        caches = (self.jobs, self.pods, self.podgroups, self.services)
        before = [{k: o for k in c if (o := c.get(k)) is not None} for c in caches]  # deep copies
        result = await reconcile(self, request)
        for cache, seen in zip(caches, before, strict=True):
            for key, old in seen.items():
                # An informer may have stored a newer version meanwhile; the same version must be unchanged.
                if cache.version(key) == old["metadata"].get("resourceVersion"):
                    assert cache.get(key, copy=False) == old, f"reconcile of {request} changed cached {key}"
        raw = self.jobs.get(request.key, copy=False)
        if raw is not None:
            reused = self.parsed.get(request.key, raw, lambda: copy.deepcopy(raw))
            assert reused == TorchJob.from_k8s(copy.deepcopy(raw))
        return result

    monkeypatch.setattr(TorchJobReconciler, "reconcile", checked)


async def test_creates_podgroup_service_then_pods_in_order_and_marks_queued() -> None:
    fake, reconciler, clock = setup()
    sync(fake, reconciler)
    result = await reconcile(reconciler)
    assert writes(fake) == [
        ("POST", "/apis/scheduling.volcano.sh/v1beta1/namespaces/team-a/podgroups"),
        ("POST", "/api/v1/namespaces/team-a/services"),
        ("POST", "/api/v1/namespaces/team-a/pods"),
        ("POST", "/api/v1/namespaces/team-a/pods"),
    ]
    # A new job's Queued is held back one batch window (a gang admitted at once goes straight to Running)...
    assert job_status(fake) == {}
    assert 0 < result.requeue_after <= 2.0
    events = list(fake.objects[EVENTS].values())
    assert [e["reason"] for e in events] == ["WaitingForScheduler"]
    assert events[0]["involvedObject"]["name"] == "llama"
    assert events[0]["type"] == "Normal"
    await step(fake, reconciler)
    assert len(writes(fake)) == 4  # still inside the window
    # ...and written once the gang has really waited that long, its Event not recorded twice.
    clock.tick(2.5)
    before = len(fake.requests)
    await step(fake, reconciler)
    assert writes(fake, before) == [
        ("PATCH", "/apis/pyroclast.dev/v1alpha1/namespaces/team-a/torchjobs/llama/status")
    ]
    status = job_status(fake)
    assert status["phase"] == "Queued"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Queued"] == "True"
    assert [e["reason"] for e in fake.objects[EVENTS].values()] == ["WaitingForScheduler"]


async def test_a_gang_admitted_within_the_window_goes_straight_to_running() -> None:
    fake, reconciler, clock = setup()
    await step(fake, reconciler)
    set_pods(fake, "Running")
    clock.tick(1)
    before = len(fake.requests)
    await step(fake, reconciler)
    assert writes(fake, before) == [
        ("PATCH", "/apis/pyroclast.dev/v1alpha1/namespaces/team-a/torchjobs/llama/status")
    ]
    status = job_status(fake)
    assert status["phase"] == "Running"
    assert status["readyNodes"] == 2
    reasons = [e["reason"] for e in fake.objects[EVENTS].values()]
    assert reasons == ["WaitingForScheduler", "AllWorkersRunning"]


async def test_a_queued_phase_never_written_still_counts_its_time_queued() -> None:
    queued_time = sample("pyroclast_torchjob_queued_seconds_count")
    fake, reconciler, clock = setup()
    await step(fake, reconciler)  # Queued, held back
    set_pods(fake, "Running")
    clock.tick(1)
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Running"
    assert "Queued" not in {c["type"] for c in job_status(fake)["conditions"] if c["status"] == "True"}
    assert sample("pyroclast_torchjob_queued_seconds_count") == queued_time + 1


async def test_slow_cache_never_causes_duplicate_creates() -> None:
    fake, reconciler, _ = setup()
    await step(fake, reconciler)
    before = len(fake.requests)
    # The caches still show no pods and the old job: the reconciler must wait, not create again.
    for _ in range(3):
        await reconcile(reconciler)
    assert writes(fake, before, events=True) == []
    sync(fake, reconciler)
    await reconcile(reconciler)
    assert writes(fake, before, events=True) == []  # caught up, nothing new to do
    assert len(fake.objects[PODS]) == 2


async def test_happy_path_then_a_steady_job_makes_zero_writes() -> None:
    fake, reconciler, _ = setup()
    await step(fake, reconciler)
    set_pods(fake, "Running")
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Running"
    assert job_status(fake)["readyNodes"] == 2
    before = len(fake.requests)
    for _ in range(3):
        await step(fake, reconciler)
    assert writes(fake, before, events=True) == []

    set_pods(fake, "Succeeded", exit_code=0)
    await step(fake, reconciler)
    status = job_status(fake)
    assert status["phase"] == "Succeeded"
    assert "completionTime" in status
    assert fake.objects[PODGROUPS] == {}  # quota freed at the end
    assert len(fake.objects[PODS]) == 2  # cleanPodPolicy Running keeps finished pods
    reasons = [e["reason"] for e in fake.objects[EVENTS].values()]
    assert reasons == ["WaitingForScheduler", "AllWorkersRunning", "AllWorkersSucceeded"]


async def test_happy_path_write_count_is_bounded() -> None:
    fake, reconciler, _ = setup()
    await step(fake, reconciler)
    set_pods(fake, "Running")
    await step(fake, reconciler)
    set_pods(fake, "Succeeded", exit_code=0)
    await step(fake, reconciler)
    await step(fake, reconciler)
    # PodGroup + Service + N pods + 2 status writes (Running, Succeeded: a Queued admitted within the batch
    # window is never written) + PodGroup delete.
    assert len(writes(fake)) == 2 + 2 + 2 + 1


async def test_retryable_failure_restarts_the_gang_after_old_pods_are_gone() -> None:
    fake, reconciler, _ = setup()
    await step(fake, reconciler)
    set_pods(fake, "Running")
    await step(fake, reconciler)
    set_pods(fake, "Failed", exit_code=1, only="llama-worker-0")
    await step(fake, reconciler)
    status = job_status(fake)
    assert status["phase"] == "Restarting"
    assert status["failureRestarts"] == 1
    assert fake.objects[PODS] == {}  # the fake deletes at once
    await step(fake, reconciler)
    pods = fake.objects[PODS]
    assert sorted(n for _, n in pods) == ["llama-worker-0", "llama-worker-1"]
    assert {p["metadata"]["labels"][ATTEMPT_LABEL] for p in pods.values()} == {"1"}
    assert job_status(fake)["phase"] == "Queued"
    set_pods(fake, "Succeeded", exit_code=0)
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Succeeded"
    assert job_status(fake)["failureRestarts"] == 1


async def test_stale_job_read_cannot_count_a_restart_twice() -> None:
    fake, reconciler, _ = setup()
    await step(fake, reconciler)
    set_pods(fake, "Running")
    await step(fake, reconciler)
    set_pods(fake, "Failed", exit_code=1, only="llama-worker-0")
    await step(fake, reconciler)
    # Pods and PodGroup caught up, the job cache did not: the reconciler must wait for it.
    stale = copy.deepcopy(reconciler.jobs.get("team-a/llama"))
    sync(fake, reconciler)
    assert stale is not None
    reconciler.jobs.upsert(stale)
    before = len(fake.requests)
    await reconcile(reconciler)
    assert writes(fake, before, events=True) == []
    assert job_status(fake)["failureRestarts"] == 1


async def test_suspend_deletes_everything_and_resume_recreates() -> None:
    fake, reconciler, _ = setup()
    await step(fake, reconciler)
    job = copy.deepcopy(fake.objects[JOBS][("team-a", "llama")])
    job["spec"]["runPolicy"] = {"suspend": True}
    fake.put_object(*JOBS, job)
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Suspended"
    assert fake.objects[PODS] == {}
    assert fake.objects[PODGROUPS] == {}
    job = copy.deepcopy(fake.objects[JOBS][("team-a", "llama")])
    job["spec"]["runPolicy"] = {"suspend": False}
    fake.put_object(*JOBS, job)
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Queued"
    assert len(fake.objects[PODS]) == 2
    assert len(fake.objects[PODGROUPS]) == 1


async def test_ttl_deletes_the_finished_job() -> None:
    fake, reconciler, clock = setup(runPolicy={"ttlSecondsAfterFinished": 30})
    await step(fake, reconciler)
    set_pods(fake, "Succeeded", exit_code=0)
    sync(fake, reconciler)
    result = await reconcile(reconciler)
    assert job_status(fake)["phase"] == "Succeeded"
    assert result.requeue_after == 30
    clock.tick(31)
    await step(fake, reconciler)
    assert fake.objects[JOBS] == {}
    await step(fake, reconciler)  # the job is gone: nothing to do, no error


async def test_runs_on_the_manager_with_real_informers() -> None:
    fake = FakeApiServer()
    fake.put_object(*JOBS, job_body())
    fake.put_object(*QUEUES, open_queue("default"))
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    manager.add(TorchJobReconciler(manager).controller(workers=2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: len(fake.objects.get(PODS, {})) == 2)
        set_pods(fake, "Running")
        await eventually(lambda: phase_of(fake) == "Running")
        set_pods(fake, "Succeeded", exit_code=0)
        await eventually(lambda: phase_of(fake) == "Succeeded")
        await eventually(lambda: fake.objects[PODGROUPS] == {})
        manager.stop()
    pod_posts = [p for m, p, q in fake.requests if m == "POST" and p.endswith("/pods") and "dryRun" not in q]
    assert len(pod_posts) == 2
    reasons = [e["reason"] for e in fake.objects[EVENTS].values()]
    assert reasons == ["WaitingForScheduler", "AllWorkersRunning", "AllWorkersSucceeded"]


async def test_job_metrics_follow_phases_restarts_and_gang_size() -> None:
    gangs = sample("pyroclast_torchjob_gang_size_count")
    failures = sample("pyroclast_torchjob_restarts_total", cause="failure")
    to_running = sample("pyroclast_torchjob_time_to_running_seconds_count")
    queued_time = sample("pyroclast_torchjob_queued_seconds_count")
    fake, reconciler, clock = setup()
    await step(fake, reconciler)
    assert sample("pyroclast_torchjobs", phase="Queued", queue="default") >= 1
    assert sample("pyroclast_torchjob_gang_size_count") == gangs + 1
    clock.tick(3)
    await step(fake, reconciler)  # the requeue after the batch window writes Queued
    set_pods(fake, "Running")
    clock.tick(4)
    await step(fake, reconciler)
    assert sample("pyroclast_torchjob_time_to_running_seconds_count") == to_running + 1
    assert sample("pyroclast_torchjob_queued_seconds_count") == queued_time + 1
    set_pods(fake, "Failed", exit_code=1, only="llama-worker-1")
    await step(fake, reconciler)
    assert sample("pyroclast_torchjob_restarts_total", cause="failure") == failures + 1
    # Other tests' jobs share the process-wide gauge: compare differences only.
    queued = sample("pyroclast_torchjobs", phase="Queued", queue="default")
    restarting = sample("pyroclast_torchjobs", phase="Restarting", queue="default")
    fake.delete_object(*JOBS, "team-a", "llama")
    await step(fake, reconciler)  # the job is gone: its series is dropped
    assert sample("pyroclast_torchjobs", phase="Restarting", queue="default") == restarting - 1
    assert sample("pyroclast_torchjobs", phase="Queued", queue="default") == queued


async def test_minor_status_changes_are_batched_and_phase_changes_are_not() -> None:
    fake = FakeApiServer()
    fake.put_object(*JOBS, job_body())
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    mono = [100.0]
    reconciler = TorchJobReconciler(manager, clock=Clock(), monotonic=lambda: mono[0])
    await step(fake, reconciler)
    set_pods(fake, "Running")
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Running"  # a phase change is written at once
    set_pods(fake, "Succeeded", exit_code=0, only="llama-worker-0")
    before = len(fake.requests)
    sync(fake, reconciler)
    result = await reconcile(reconciler)
    assert writes(fake, before) == []  # activeNodes 2 -> 1 alone waits for company
    assert 0 < result.requeue_after <= 2.0
    mono[0] += 2.5
    await step(fake, reconciler)
    assert writes(fake, before) == [
        ("PATCH", "/apis/pyroclast.dev/v1alpha1/namespaces/team-a/torchjobs/llama/status")
    ]
    assert job_status(fake)["activeNodes"] == 1
    set_pods(fake, "Succeeded", exit_code=0, only="llama-worker-1")
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Succeeded"


async def test_worker_gone_from_an_elastic_job_is_explained_by_the_evict_event_and_shrinks_in_place() -> None:
    shrunk = sample("pyroclast_torchjob_disruptions_total", kind="Preemption", action="Shrunk")
    down = sample("pyroclast_torchjob_resizes_total", direction="down", cause="Preemption")
    fake, reconciler, clock = setup(nodes={"count": 2, "min": 1, "max": 2})
    await step(fake, reconciler)
    set_pods(fake, "Running")
    clock.tick(3)
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Running"
    reads = sum(1 for m, p, _ in fake.requests if m == "GET" and p.endswith("/events"))
    assert reads == 0, "no Event read while the gang is whole"

    victim = fake.objects[PODS][("team-a", "llama-worker-1")]
    fake.put_object(
        *EVENTS,
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "llama-worker-1.evict", "namespace": "team-a"},
            "involvedObject": {"kind": "Pod", "name": "llama-worker-1", "uid": victim["metadata"]["uid"]},
            "reason": "Evict",
            "message": "Pod is evicted, because of preempt",
            "lastTimestamp": "2026-11-23T12:00:04Z",
        },
    )
    fake.delete_object(*PODS, "team-a", "llama-worker-1")
    clock.tick(2)
    await step(fake, reconciler)
    assert sum(1 for m, p, _ in fake.requests if m == "GET" and p.endswith("/events")) == 1
    status = job_status(fake)
    assert status["phase"] == "Running"
    assert status.get("preemptionRestarts", 0) == 0
    [taken] = status["disruptions"]
    assert (taken["kind"], taken["reason"], taken["action"]) == ("Preemption", "Evict", "Shrunk")
    assert taken["podUid"] == victim["metadata"]["uid"]
    assert [(r["fromNodes"], r["toNodes"]) for r in status["resizes"]] == [(2, 1)]
    assert ("team-a", "llama-worker-1") in fake.objects[PODS], "a replacement waits for capacity"
    assert sample("pyroclast_torchjob_disruptions_total", kind="Preemption", action="Shrunk") == shrunk + 1
    assert sample("pyroclast_torchjob_resizes_total", direction="down", cause="Preemption") == down + 1
