"""The TorchJob lifecycle plan: pure decisions from (job, PodGroup, pods, Service, now), case by case."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import ConditionStatus, ConditionType, FailurePolicy, Phase, TorchJobStatus
from controller.torchjob.labels import ATTEMPT_LABEL, REPLICA_INDEX_LABEL
from controller.torchjob.observe import observe_podgroup, observe_worker
from controller.torchjob.plan import (
    QUEUED_RECHECK,
    REASON_DEADLINE,
    REASON_FAILED_RETRY,
    REASON_FAILURE_BUDGET,
    REASON_PERMANENT,
    REASON_PREEMPTED,
    REASON_PREEMPTION_BUDGET,
    REASON_RANK0_SUCCEEDED,
    CreateObject,
    DeleteJob,
    PatchPodGroup,
    is_permanent,
    plan,
)
from controller.torchjob.rendezvous import (
    desired_rendezvous_pod,
    desired_rendezvous_podgroup,
    desired_rendezvous_service,
)
from controller.torchjob.service import desired_service
from scheduling import podgroup_name
from tests.controller.torchjob.plans import (
    PHASES,
    T0,
    creates,
    deletes,
    make_job,
    pod,
    podgroup,
    resize,
    running_job,
    with_status,
)


def test_new_job_creates_podgroup_then_service_then_pods_and_is_queued() -> None:
    job = make_job()
    step = plan(job, None, [], None, T0)
    kinds = [a.kind for a in step.actions if isinstance(a, CreateObject)]
    assert kinds == ["PodGroup", "Service", "Pod", "Pod"]
    assert creates(step, "PodGroup") == [podgroup_name(job)]
    assert creates(step, "Pod") == ["llama-worker-0", "llama-worker-1"]
    pods = [a.body for a in step.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    assert all(p["metadata"]["labels"][ATTEMPT_LABEL] == "0" for p in pods)
    assert step.status.phase == Phase.QUEUED
    assert step.status.start_time == T0
    assert step.status.pod_group_name == podgroup_name(job)
    assert step.status.selector == "pyroclast.dev/job-name=llama"
    assert step.status.desired_nodes == 2
    assert [e.reason for e in step.events] == ["WaitingForScheduler"]
    assert not step.commit_first


def test_queued_surfaces_the_schedulers_unschedulable_reason() -> None:
    job = make_job()
    job = with_status(job, plan(job, None, [], None, T0))
    message = "2/2 tasks in gang unschedulable: pod group is not ready, 2 Pending, 2 minAvailable"
    pg = podgroup(
        job,
        "Inqueue",
        [
            {"type": "Scheduled", "status": "True", "lastTransitionTime": "2026-11-23T11:00:00Z"},
            {
                "type": "Unschedulable",
                "status": "True",
                "reason": "NotEnoughResources",
                "message": message,
                "lastTransitionTime": "2026-11-23T12:00:01Z",
            },
        ],
    )
    pods = [pod(job, i, phase="Pending", ready=False) for i in range(2)]
    step = plan(job, pg, pods, desired_service(job), T0 + timedelta(seconds=2))
    assert step.status.phase == Phase.QUEUED
    cond = step.status.condition("Queued")
    assert cond is not None
    assert cond.status == ConditionStatus.TRUE
    assert "NotEnoughResources" in cond.message
    assert message in cond.message
    assert cond.last_transition_time == T0  # status did not flip: the transition time stays
    assert step.actions == []
    # The scheduler's first reason is an Event too (kubectl describe shows it), not only the condition ...
    assert [(e.type, e.reason, e.message) for e in step.events] == [
        ("Normal", "WaitingForScheduler", cond.message)
    ]
    # ... once: the next look with the same reason (other counts) records nothing.
    job = with_status(job, step)
    again = podgroup(
        job,
        "Inqueue",
        [
            {
                "type": "Unschedulable",
                "status": "True",
                "reason": "NotEnoughResources",
                "message": message.replace("2/2", "1/2"),
                "lastTransitionTime": "2026-11-23T12:00:05Z",
            }
        ],
    )
    later = plan(job, again, pods, desired_service(job), T0 + timedelta(seconds=20))
    assert later.status.phase == Phase.QUEUED
    assert later.events == []


def test_reason_from_scheduler_events_when_the_enqueue_gate_holds_the_gang() -> None:
    job = make_job()
    job = with_status(job, plan(job, None, [], None, T0))
    pg = podgroup(job, "Pending")
    name = podgroup_name(job)

    def event(message: str, at: str, kind: str = "PodGroup", of: str = name) -> dict[str, Any]:
        return {
            "reason": "Unschedulable",
            "message": message,
            "lastTimestamp": at,
            "involvedObject": {"kind": kind, "name": of},
        }

    events = [
        event("queue resource quota insufficient: insufficient cpu", "2026-11-23T12:00:05Z"),
        event("resource in cluster is overused", "2026-11-23T12:00:01Z"),
        event("not mine", "2026-11-23T12:00:09Z", of="other-pg"),
        event("a job event", "2026-11-23T12:00:09Z", kind="TorchJob"),
    ]
    step = plan(job, pg, [], desired_service(job), T0, events)
    cond = step.status.condition("Queued")
    assert cond is not None
    assert "Unschedulable" in cond.message
    assert "queue resource quota insufficient: insufficient cpu" in cond.message
    assert step.requeue_after == QUEUED_RECHECK


def test_stale_unschedulable_older_than_scheduled_is_not_reported() -> None:
    job = make_job()
    pg = podgroup(
        job,
        "Running",
        [
            {"type": "Unschedulable", "status": "True", "reason": "NotEnoughResources", "message": "old",
             "lastTransitionTime": "2026-11-23T11:00:00Z"},
            {"type": "Scheduled", "status": "True", "lastTransitionTime": "2026-11-23T11:30:00Z"},
        ],
    )  # fmt: skip
    gang = observe_podgroup(pg)
    assert gang.phase == "Running"
    assert gang.reason == ""
    assert gang.message == ""


def test_all_gang_members_running_makes_running_and_a_steady_job_plans_nothing() -> None:
    job, pg, svc = running_job()
    cond = job.status.condition("Running") if job.status else None
    assert cond is not None
    assert cond.status == ConditionStatus.TRUE
    queued = job.status.condition("Queued") if job.status else None
    assert queued is not None
    assert queued.status == ConditionStatus.FALSE
    assert job.status is not None
    assert job.status.ready_nodes == 2
    assert job.status.active_nodes == 2
    again = plan(job, pg, [pod(job, 0), pod(job, 1)], svc, T0 + timedelta(minutes=3))
    assert again.actions == []
    assert again.events == []
    assert again.status == job.status


def test_partly_running_gang_stays_queued_and_only_missing_pods_are_created() -> None:
    job = make_job()
    job = with_status(job, plan(job, None, [], None, T0))
    step = plan(job, podgroup(job), [pod(job, 0)], desired_service(job), T0)
    assert step.status.phase == Phase.QUEUED
    assert creates(step, "Pod") == ["llama-worker-1"]
    assert creates(step, "PodGroup") == []
    assert creates(step, "Service") == []


def test_podgroup_spec_drift_is_merge_patched() -> None:
    job = make_job()
    pg = podgroup(job)
    pg["spec"]["minMember"] = 1
    step = plan(with_status(job, plan(job, None, [], None, T0)), pg, [], desired_service(job), T0)
    patches = [a for a in step.actions if isinstance(a, PatchPodGroup)]
    assert patches == [PatchPodGroup(podgroup_name(job), {"spec": {"minMember": 2}})]


def test_resizing_a_fixed_job_restarts_the_whole_gang_at_the_new_size() -> None:
    job, pg, svc = running_job(nodes={"count": 3})
    smaller = resize(job, 2)
    pods = [pod(job, i) for i in range(3)]
    step = plan(smaller, pg, pods, svc, T0)
    assert step.status.phase == Phase.RESTARTING
    assert sorted(deletes(step, "Pod")) == ["llama-worker-0", "llama-worker-1", "llama-worker-2"]
    assert step.status.failure_restarts == 0  # a resize spends no budget
    assert step.status.preemption_restarts == 0
    assert [e.reason for e in step.events] == ["Resized"]

    smaller = with_status(smaller, step)
    terminating = [pod(job, i, deleting=True) for i in range(3)]
    waiting = plan(smaller, pg, terminating, svc, T0)
    assert waiting.actions == []
    assert waiting.status.phase == Phase.RESTARTING

    fresh = plan(smaller, pg, [], svc, T0)
    assert creates(fresh, "Pod") == ["llama-worker-0", "llama-worker-1"]
    bodies = [a.body for a in fresh.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    nnodes = {
        e["value"] for b in bodies for e in b["spec"]["containers"][0]["env"] if e["name"] == "PET_NNODES"
    }
    assert nnodes == {"2:2"}


def test_scaling_an_elastic_job_adds_or_drops_workers_in_place() -> None:
    job, pg, svc = running_job(nodes={"count": 2, "min": 1, "max": 4})
    store = {**desired_rendezvous_pod(job), "status": {"phase": "Running"}}
    store_objs = [desired_rendezvous_service(job), desired_rendezvous_podgroup(job)]
    pods = [pod(job, 0), pod(job, 1), store]
    later = T0 + timedelta(minutes=1)  # after the gang began Running: a resize of this run
    bigger = plan(resize(job, 3), pg, pods, svc, later, rendezvous_objects=store_objs)
    assert bigger.status.phase == Phase.RUNNING
    assert creates(bigger, "Pod") == ["llama-worker-2"]
    assert deletes(bigger, "Pod") == []
    # Worker 1 is still ready while its delete goes out: no "replacement workers joined" for it.
    smaller = plan(resize(job, 1), pg, pods, svc, later, rendezvous_objects=store_objs)
    assert smaller.status.phase == Phase.RUNNING
    assert deletes(smaller, "Pod") == ["llama-worker-1"]
    # Each is recorded (kubectl describe, status.resizes), not done silently ...
    assert job.status is not None
    assert job.status.desired_nodes == 2
    for step, to in ((bigger, 3), (smaller, 1)):
        assert [(e.type, e.reason) for e in step.events] == [("Normal", "Scaled")]
        assert f"2 -> {to}" in step.events[0].message
        assert [(r.from_nodes, r.to_nodes, r.cause) for r in step.status.resizes or []] == [(2, to, "Scaled")]
        assert step.status.desired_nodes == to
    # ... once: the next pass, which sees the new count as desired, records nothing more.
    three = with_status(resize(job, 3), bigger)
    again = plan(three, pg, [*pods, pod(three, 2)], svc, later, rendezvous_objects=store_objs)
    assert again.events == []
    assert again.status.resizes == bigger.status.resizes


def test_succeeded_only_when_every_worker_succeeded() -> None:
    job, pg, svc = running_job()
    half = plan(job, pg, [pod(job, 0, phase="Succeeded", exit_code=0), pod(job, 1)], svc, T0)
    assert half.status.phase == Phase.RUNNING
    assert half.actions == []
    done = plan(job, pg, [pod(job, i, phase="Succeeded", exit_code=0) for i in range(2)], svc, T0)
    assert done.status.phase == Phase.SUCCEEDED
    assert done.status.completion_time == T0
    assert done.commit_first
    assert deletes(done, "PodGroup") == [podgroup_name(job)]  # quota freed
    assert deletes(done, "Pod") == []  # cleanPodPolicy Running: finished pods are kept
    assert [e.reason for e in done.events] == ["AllWorkersSucceeded"]
    assert done.status.desired_nodes == 0


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("All", ["llama-worker-0", "llama-worker-1"]), ("Running", ["llama-worker-1"]), ("None", [])],
)
def test_finished_job_cleans_pods_per_policy(policy: str, expected: list[str]) -> None:
    job, pg, svc = running_job(
        runPolicy={"cleanPodPolicy": policy}, failurePolicy={"permanentExitCodes": [2]}
    )
    pods = [pod(job, 0, phase="Failed", exit_code=2), pod(job, 1)]
    step = plan(job, pg, pods, svc, T0)
    assert step.status.phase == Phase.FAILED
    assert deletes(step, "Pod") == expected


def test_ttl_requeues_for_the_remainder_then_deletes_the_job() -> None:
    job, pg, svc = running_job(runPolicy={"ttlSecondsAfterFinished": 60})
    done = plan(job, pg, [pod(job, i, phase="Succeeded", exit_code=0) for i in range(2)], svc, T0)
    assert done.requeue_after == 60
    job = with_status(job, done)
    later = plan(job, None, [], svc, T0 + timedelta(seconds=45))
    assert later.requeue_after == 15
    assert later.actions == []
    assert later.events == []
    assert later.status == job.status
    expired = plan(job, None, [], svc, T0 + timedelta(seconds=61))
    assert expired.actions == [DeleteJob()]


def test_finished_job_never_recreates_anything() -> None:
    job, pg, svc = running_job()
    job = with_status(
        job, plan(job, pg, [pod(job, i, phase="Succeeded", exit_code=0) for i in range(2)], svc, T0)
    )
    step = plan(job, None, [], None, T0 + timedelta(hours=1))
    assert step.actions == []
    assert step.status == job.status


def test_success_policy_defaults_to_all_workers() -> None:
    assert make_job().spec.success_policy == "AllWorkers"


def test_rank0_success_stops_the_running_workers_and_ignores_the_failed_ones() -> None:
    job, pg, svc = running_job(
        nodes={"count": 3}, successPolicy="Rank0", failurePolicy={"permanentExitCodes": [3]}
    )
    pods = [
        pod(job, 0, phase="Succeeded", exit_code=0),
        pod(job, 1),
        pod(job, 2, phase="Failed", exit_code=3),  # permanent, yet not worker 0's: no part of the outcome
    ]
    done = plan(job, pg, pods, svc, T0)
    assert done.status.phase == Phase.SUCCEEDED
    assert done.commit_first
    assert done.status.failure_restarts == 0
    succeeded = done.status.condition(ConditionType.SUCCEEDED)
    assert succeeded is not None
    assert succeeded.reason == REASON_RANK0_SUCCEEDED
    assert succeeded.message == (
        "worker 0 succeeded (successPolicy Rank0); stopping 1 unfinished worker(s): llama-worker-1; "
        "exits of llama-worker-2 ignored"
    )
    assert [(e.type, e.reason) for e in done.events] == [("Normal", REASON_RANK0_SUCCEEDED)]
    assert deletes(done, "Pod") == ["llama-worker-1"]  # a graceful delete; finished pods are kept
    assert deletes(done, "PodGroup") == [podgroup_name(job)]
    assert creates(done, "Pod") == []


def test_the_same_pods_fail_the_job_under_all_workers() -> None:
    job, pg, svc = running_job(nodes={"count": 3}, failurePolicy={"permanentExitCodes": [3]})
    pods = [
        pod(job, 0, phase="Succeeded", exit_code=0),
        pod(job, 1),
        pod(job, 2, phase="Failed", exit_code=3),
    ]
    assert plan(job, pg, pods, svc, T0).status.phase == Phase.FAILED


def test_rank0_success_stops_running_workers_even_under_clean_pod_policy_none() -> None:
    job, pg, svc = running_job(successPolicy="Rank0", runPolicy={"cleanPodPolicy": "None"})
    done = plan(job, pg, [pod(job, 0, phase="Succeeded", exit_code=0), pod(job, 1)], svc, T0)
    assert done.status.phase == Phase.SUCCEEDED
    assert deletes(done, "Pod") == ["llama-worker-1"]
    # The next pass sees the worker going away and neither deletes it again nor changes the outcome.
    job = with_status(job, done)
    later = [pod(job, 0, phase="Succeeded", exit_code=0), pod(job, 1, deleting=True)]
    again = plan(job, None, later, svc, T0 + timedelta(seconds=1))
    assert again.status.phase == Phase.SUCCEEDED
    assert again.actions == []
    assert again.events == []


def test_rank0_another_workers_failure_neither_restarts_nor_fails_the_job() -> None:
    job, pg, svc = running_job(nodes={"count": 3}, successPolicy="Rank0")
    pods = [pod(job, 0), pod(job, 1, phase="Failed", exit_code=1), pod(job, 2)]
    step = plan(job, pg, pods, svc, T0)
    assert step.status.phase == Phase.RUNNING
    assert step.status.failure_restarts == 0
    assert deletes(step, "Pod") == []
    assert creates(step, "Pod") == []  # the failed worker is not replaced inside the attempt
    assert step.events == []


def test_rank0_worker_0_failure_follows_the_failure_policy() -> None:
    job, pg, svc = running_job(successPolicy="Rank0")
    step = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=1), pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.RESTARTING
    assert step.status.failure_restarts == 1
    assert sorted(deletes(step, "Pod")) == ["llama-worker-0", "llama-worker-1"]


def test_rank0_waits_for_worker_0_when_the_others_are_done() -> None:
    job, pg, svc = running_job(nodes={"count": 3}, successPolicy="Rank0")
    pods = [
        pod(job, 0),
        pod(job, 1, phase="Succeeded", exit_code=0),
        pod(job, 2, phase="Succeeded", exit_code=0),
    ]
    step = plan(job, pg, pods, svc, T0)
    assert step.status.phase == Phase.RUNNING
    assert step.actions == []


def test_retryable_failure_restarts_the_whole_gang_as_a_new_attempt() -> None:
    job, pg, svc = running_job()
    step = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=1), pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.RESTARTING
    assert step.status.failure_restarts == 1
    assert step.status.preemption_restarts == 0
    assert step.status.last_disruption_reason == "ExitCode1"
    assert step.commit_first
    assert sorted(deletes(step, "Pod")) == ["llama-worker-0", "llama-worker-1"]
    assert creates(step, "Pod") == []
    assert [e.type for e in step.events] == ["Warning"]

    # Next pass: the old pods are still terminating, so nothing new is created and nothing is counted twice.
    job = with_status(job, step)
    terminating = [pod(job, 0, phase="Failed", exit_code=1, deleting=True), pod(job, 1, deleting=True)]
    waiting = plan(job, pg, terminating, svc, T0 + timedelta(seconds=1))
    assert waiting.status.phase == Phase.RESTARTING
    assert waiting.status.failure_restarts == 1
    assert waiting.actions == []
    assert waiting.events == []

    # Old pods gone: attempt 1 is created under the same names.
    fresh = plan(job, pg, [], svc, T0 + timedelta(seconds=2))
    assert creates(fresh, "Pod") == ["llama-worker-0", "llama-worker-1"]
    bodies = [a.body for a in fresh.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    assert all(b["metadata"]["labels"][ATTEMPT_LABEL] == "1" for b in bodies)
    assert fresh.status.phase == Phase.QUEUED


def test_old_attempt_pods_are_deleted_before_the_new_attempt_starts() -> None:
    job = make_job(status={"phase": "Restarting", "failureRestarts": 1})
    step = plan(job, podgroup(job), [pod(job, 0, attempt=0, phase="Failed", exit_code=1)], None, T0)
    assert deletes(step, "Pod") == ["llama-worker-0"]
    assert creates(step, "Pod") == []


def test_permanent_exit_code_fails_at_once_and_keeps_failed_pods_for_logs() -> None:
    job, pg, svc = running_job(failurePolicy={"permanentExitCodes": [3]})
    step = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=3), pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.FAILED
    assert step.status.failure_restarts == 0
    cond = step.status.condition("Failed")
    assert cond is not None
    assert cond.reason == REASON_PERMANENT
    assert "exit code 3" in cond.message
    assert deletes(step, "Pod") == ["llama-worker-1"]
    assert deletes(step, "PodGroup") == [podgroup_name(job)]


@pytest.mark.parametrize(
    ("message", "quoted"),
    [
        (
            '{"reason": "error", "step": 3, "error": "ValueError: bad learning rate -1"}',
            "bad learning rate -1",
        ),
        ("Traceback (most recent call last):\n  ...\nKeyError: 'labels'\n", "KeyError: 'labels'"),
        ('{"reason": "error", "step": 3, "error": ""}', None),
        (None, None),
    ],
)
def test_failed_condition_quotes_the_workers_message(message: str | None, quoted: str | None) -> None:
    """A report's ``error``, or the last line of a plain message (the kubelet's log tail)."""
    job, pg, svc = running_job(failurePolicy={"permanentExitCodes": [2], "maxFailureRestarts": 0})
    for code in (2, 1):  # permanent, then a retryable code with no budget left
        failed = pod(job, 0, phase="Failed", exit_code=code, message=message)
        cond = plan(job, pg, [failed, pod(job, 1)], svc, T0).status.condition("Failed")
        assert cond is not None
        if quoted is None:
            assert cond.message.endswith(("(permanent)", "exhausted"))
        else:
            assert cond.message.endswith(f": {quoted}")


def test_code_outside_retryable_list_is_permanent() -> None:
    job, pg, svc = running_job(failurePolicy={"retryableExitCodes": [137]})
    step = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=1), pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.FAILED
    again = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=137), pod(job, 1)], svc, T0)
    assert again.status.phase == Phase.RESTARTING


def test_failure_budget_exhausted_fails_with_reason() -> None:
    job, pg, svc = running_job(failurePolicy={"maxFailureRestarts": 1})
    assert job.status is not None
    job = job.model_copy(update={"status": job.status.model_copy(update={"failure_restarts": 1})})
    step = plan(
        job, pg, [pod(job, 0, attempt=1, phase="Failed", exit_code=1), pod(job, 1, attempt=1)], svc, T0
    )
    assert step.status.phase == Phase.FAILED
    cond = step.status.condition("Failed")
    assert cond is not None
    assert cond.reason == REASON_FAILURE_BUDGET
    assert step.status.failure_restarts == 1


def test_zero_budget_fails_on_first_retryable_failure() -> None:
    job, pg, svc = running_job(failurePolicy={"maxFailureRestarts": 0})
    step = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=1), pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.FAILED


def test_preempted_worker_counts_against_the_preemption_budget_only() -> None:
    job, pg, svc = running_job(failurePolicy={"maxFailureRestarts": 0})
    step = plan(
        job, pg, [pod(job, 0, disruption="PreemptionByScheduler", deleting=True), pod(job, 1)], svc, T0
    )
    assert step.status.phase == Phase.RESTARTING
    assert step.status.preemption_restarts == 1
    assert step.status.failure_restarts == 0
    assert step.status.last_disruption_reason == "PreemptionByScheduler"
    assert deletes(step, "Pod") == ["llama-worker-1"]  # worker 0 is already going
    assert step.events[0].reason == REASON_PREEMPTED


def test_evicted_pod_failed_with_reason_evicted_is_a_preemption_not_a_failure() -> None:
    job, pg, svc = running_job()
    evicted = pod(job, 0, phase="Failed", exit_code=137)
    evicted["status"]["reason"] = "Evicted"
    step = plan(job, pg, [evicted, pod(job, 1)], svc, T0)
    assert step.status.preemption_restarts == 1
    assert step.status.failure_restarts == 0


def test_worker_vanished_while_running_is_a_preemption() -> None:
    job, pg, svc = running_job()
    step = plan(job, pg, [pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.RESTARTING
    assert step.status.preemption_restarts == 1
    assert step.status.last_disruption_reason == "PodVanished"


def test_missing_worker_while_queued_is_just_created() -> None:
    job = make_job()
    job = with_status(job, plan(job, None, [], None, T0))
    step = plan(job, podgroup(job), [pod(job, 1, phase="Pending")], desired_service(job), T0)
    assert step.status.preemption_restarts == 0
    assert creates(step, "Pod") == ["llama-worker-0"]


def test_preemption_budget_exhausted_fails() -> None:
    job, pg, svc = running_job(failurePolicy={"maxPreemptionRestarts": 0})
    step = plan(job, pg, [pod(job, 0, disruption="Evicted"), pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.FAILED
    cond = step.status.condition("Failed")
    assert cond is not None
    assert cond.reason == REASON_PREEMPTION_BUDGET


def test_suspend_deletes_pods_and_podgroup_and_resume_recreates() -> None:
    job, pg, svc = running_job()
    suspended = job.model_copy(
        update={
            "spec": job.spec.model_copy(
                update={"run_policy": job.spec.run_policy.model_copy(update={"suspend": True})}
            )
        }
    )
    step = plan(suspended, pg, [pod(job, 0), pod(job, 1)], svc, T0)
    assert step.status.phase == Phase.SUSPENDED
    assert sorted(deletes(step, "Pod")) == ["llama-worker-0", "llama-worker-1"]
    assert deletes(step, "PodGroup") == [podgroup_name(job)]
    assert step.status.start_time is None
    assert step.status.desired_nodes == 0
    running = step.status.condition("Running")
    assert running is not None
    assert running.status == ConditionStatus.FALSE

    suspended = with_status(suspended, step)
    idle = plan(suspended, None, [], svc, T0 + timedelta(seconds=5))
    assert idle.actions == []
    assert idle.events == []
    assert idle.status == suspended.status

    resumed = suspended.model_copy(update={"spec": job.spec})
    back = plan(resumed, None, [], svc, T0 + timedelta(seconds=10))
    assert [a.kind for a in back.actions if isinstance(a, CreateObject)] == ["PodGroup", "Pod", "Pod"]
    assert back.status.phase == Phase.QUEUED
    assert back.status.start_time == T0 + timedelta(seconds=10)
    assert [e.reason for e in back.events] == ["Resumed", "WaitingForScheduler"]


def test_active_deadline_fails_the_job_and_requeues_until_then() -> None:
    job = make_job(runPolicy={"activeDeadlineSeconds": 100})
    first = plan(job, None, [], None, T0)
    assert first.requeue_after == min(100, QUEUED_RECHECK)  # the deadline, or a look at a waiting gang
    job = with_status(job, first)
    pg, svc = podgroup(job, "Running"), desired_service(job)
    pods = [pod(job, 0), pod(job, 1)]
    mid = plan(job, pg, pods, svc, T0 + timedelta(seconds=40))
    assert mid.requeue_after == 60
    assert mid.status.phase == Phase.RUNNING
    late = plan(with_status(job, mid), pg, pods, svc, T0 + timedelta(seconds=100))
    assert late.status.phase == Phase.FAILED
    cond = late.status.condition("Failed")
    assert cond is not None
    assert cond.reason == REASON_DEADLINE
    assert sorted(deletes(late, "Pod")) == ["llama-worker-0", "llama-worker-1"]
    assert deletes(late, "PodGroup") == [podgroup_name(job)]


def test_job_being_deleted_plans_nothing() -> None:
    job = make_job()
    job = job.model_copy(update={"metadata": job.metadata.model_copy(update={"deletion_timestamp": T0})})
    step = plan(job, None, [], None, T0)
    assert step.actions == []
    assert step.events == []
    assert step.status == (job.status or TorchJobStatus())  # not even a status write


def test_pods_without_worker_labels_are_ignored() -> None:
    job = make_job()
    stray = pod(job, 0)
    del stray["metadata"]["labels"][REPLICA_INDEX_LABEL]
    assert observe_worker(stray) is None


@given(
    code=st.integers(min_value=1, max_value=255),
    permanent=st.lists(st.integers(min_value=1, max_value=255), max_size=5, unique=True),
    retryable=st.none() | st.lists(st.integers(min_value=1, max_value=255), max_size=5, unique=True),
)
@settings(max_examples=200, deadline=None)
def test_exit_code_classification(code: int, permanent: list[int], retryable: list[int] | None) -> None:
    if retryable is not None:
        retryable = [c for c in retryable if c not in permanent]
    policy = FailurePolicy(permanent_exit_codes=permanent or None, retryable_exit_codes=retryable)
    expected = code in permanent or (retryable is not None and code not in retryable)
    assert is_permanent(policy, code) == expected


@given(
    phases=st.lists(
        st.tuples(PHASES, st.booleans(), st.sampled_from([None, 0, 1, 3, 137])), min_size=2, max_size=2
    ),
    restarts=st.integers(min_value=0, max_value=2),
)
@settings(max_examples=150, deadline=None)
def test_invariants_over_arbitrary_pod_states(
    phases: list[tuple[str, bool, int | None]], restarts: int
) -> None:
    job, pg, svc = running_job(failurePolicy={"permanentExitCodes": [3], "maxFailureRestarts": 2})
    assert job.status is not None
    job = job.model_copy(update={"status": job.status.model_copy(update={"failure_restarts": restarts})})
    pods = [
        pod(job, i, attempt=restarts, phase=ph, exit_code=code, disruption="Evicted" if disrupted else None)
        for i, (ph, disrupted, code) in enumerate(phases)
    ]
    step = plan(job, pg, pods, svc, T0)
    new = step.status
    # Succeeded only when every worker succeeded.
    if new.phase == Phase.SUCCEEDED:
        assert all(p[0] == "Succeeded" for p in phases)
    # Counters only grow, by at most one, and the attempt changes only on Restarting.
    grown = (new.failure_restarts - restarts) + new.preemption_restarts
    assert grown in (0, 1)
    assert (grown == 1) == (new.phase == Phase.RESTARTING)
    # Nothing is created while the gang is being torn down or is finished.
    if new.phase in (Phase.RESTARTING, Phase.FAILED, Phase.SUCCEEDED):
        assert not creates(step, "Pod")
        assert not creates(step, "PodGroup")
    # Never over budget.
    assert new.failure_restarts <= 2


@given(phases=st.lists(st.tuples(PHASES, st.sampled_from([None, 0, 1, 3])), min_size=3, max_size=3))
@settings(max_examples=150, deadline=None)
def test_rank0_outcome_is_worker_0s(phases: list[tuple[str, int | None]]) -> None:
    job, pg, svc = running_job(
        nodes={"count": 3}, successPolicy="Rank0", failurePolicy={"permanentExitCodes": [3]}
    )
    pods = [pod(job, i, phase=ph, exit_code=code) for i, (ph, code) in enumerate(phases)]
    step = plan(job, pg, pods, svc, T0)
    first = phases[0][0]
    assert (step.status.phase == Phase.SUCCEEDED) == (first == "Succeeded")
    # Only worker 0's failure restarts or fails the job.
    assert (step.status.phase in (Phase.RESTARTING, Phase.FAILED)) == (first == "Failed")
    if step.status.phase == Phase.SUCCEEDED:
        unfinished = {f"llama-worker-{i}" for i, (ph, _) in enumerate(phases) if ph in ("Pending", "Running")}
        assert set(deletes(step, "Pod")) == unfinished


# --- what the plan tells the reconciler ------------------------------------------------------------------


def test_the_plan_names_the_cause_of_a_gang_restart_once_and_only_when_it_restarts() -> None:
    job, pg, svc = running_job(nodes={"count": 2})
    failed = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=1), pod(job, 1)], svc, T0)
    assert (failed.restart, [e.reason for e in failed.events]) == ("failure", [REASON_FAILED_RETRY])
    preempted = plan(job, pg, [pod(job, 0, disruption="PreemptionByScheduler"), pod(job, 1)], svc, T0)
    assert (preempted.restart, preempted.events[0].reason) == ("preemption", REASON_PREEMPTED)
    resized = plan(resize(job, 3), pg, [pod(job, i) for i in range(2)], svc, T0)
    assert (resized.restart, [e.reason for e in resized.events]) == ("resize", ["Resized"])

    restarting = with_status(job, failed)
    assert plan(restarting, pg, [pod(restarting, 0, deleting=True)], svc, T0).restart is None, "counted once"
    again = plan(resize(restarting, 3), pg, [pod(restarting, 1, attempt=1)], svc, T0)
    assert sorted(deletes(again, "Pod")) == ["llama-worker-1"]
    assert again.status.phase == Phase.RESTARTING
    assert (again.restart, again.events) == (None, []), "already restarting: one restart, announced once"
    assert plan(job, pg, [pod(job, i) for i in range(2)], svc, T0).restart is None, "a steady job"

    spent = running_job(failurePolicy={"maxFailureRestarts": 0})[0]
    out = plan(spent, pg, [pod(spent, 0, phase="Failed", exit_code=1), pod(spent, 1)], svc, T0)
    assert (out.status.phase, out.restart) == (Phase.FAILED, None), "a failure with no budget left ends it"


def test_coming_back_takes_the_sooner_of_the_plans_ask_and_a_held_write_and_leaves_the_plan_as_made() -> None:
    job, pg, svc = running_job(runPolicy={"ttlSecondsAfterFinished": 60})
    done = plan(job, pg, [pod(job, i, phase="Succeeded", exit_code=0) for i in range(2)], svc, T0)
    assert done.come_back_after(None) == 60
    assert done.come_back_after(2.0) == 2.0
    assert done.come_back_after(90.0) == 60
    assert done.come_back_after(0.0) == 0.001, "a held write due now still comes back"
    assert done.requeue_after == 60, "the plan is not edited"
    steady = plan(job, pg, [pod(job, i) for i in range(2)], svc, T0)
    assert steady.requeue_after is None
    assert (steady.come_back_after(None), steady.come_back_after(1.5)) == (None, 1.5)
