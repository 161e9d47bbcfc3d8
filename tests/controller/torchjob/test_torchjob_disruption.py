"""Preemption is not failure: Preempted while waiting, elastic shrink in place and regrowth, bounded
history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from api import ConditionStatus, DisruptionKind, Phase, TorchJob
from api.status import HISTORY
from controller.torchjob import disruption
from controller.torchjob.disruption import Departures, kind_of
from controller.torchjob.plan import REASON_AWAITING_CAPACITY, REASON_REGROWN, REASON_SHRUNK, Plan, plan
from tests.controller.torchjob.plans import (
    T0,
    creates,
    deletes,
    make_job,
    pod,
    podgroup,
    running_job,
    with_status,
)

NOW = T0 + timedelta(seconds=10)
"""After running_job()'s gang started."""
ELASTIC: dict[str, Any] = {"nodes": {"count": 4, "min": 2, "max": 4}, "nprocPerNode": 2}


def _evict_event(
    pod_name: str, uid: str, message: str = "Pod is evicted, because of reclaim"
) -> dict[str, Any]:
    return {
        "reason": "Evict",
        "message": message,
        "involvedObject": {"kind": "Pod", "name": pod_name, "uid": uid},
        "lastTimestamp": "2026-11-23T12:00:01Z",
    }


def workers_created(step: Plan) -> list[str]:
    """Worker pods created (an elastic job's rendezvous store is created beside them)."""
    return [name for name in creates(step, "Pod") if "-worker-" in name]


def _again(job: TorchJob, step: Plan) -> TorchJob:
    return with_status(job, step)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("PreemptionByScheduler", DisruptionKind.PREEMPTION),
        ("Evict", DisruptionKind.PREEMPTION),
        ("DeletionByTaintManager", DisruptionKind.NODE_LOST),
        ("NodeLost", DisruptionKind.NODE_LOST),
        ("Evicted", DisruptionKind.EVICTION),
        ("EvictionByEvictionAPI", DisruptionKind.EVICTION),
    ],
)
def test_disruption_reasons_are_classified(reason: str, kind: DisruptionKind) -> None:
    assert kind_of(reason) is kind


# --- fixed-size jobs: whole-gang restart, then Preempted until the gang runs again -------------------------


def test_preempted_fixed_job_records_the_disruption_and_waits_as_preempted() -> None:
    job, pg, svc = running_job()
    victim = pod(job, 0, disruption="PreemptionByScheduler", deleting=True)
    step = plan(job, pg, [victim, pod(job, 1)], svc, NOW)
    assert step.status.phase == Phase.RESTARTING
    assert step.status.failure_restarts == 0
    [entry] = step.status.disruptions or []
    assert (entry.kind, entry.reason, entry.pod, entry.action) == (
        DisruptionKind.PREEMPTION,
        "PreemptionByScheduler",
        "llama-worker-0",
        "Restarted",
    )
    assert entry.pod_uid == "uid-0-0"
    assert entry.time == NOW

    job = _again(job, step)
    later = NOW + timedelta(seconds=3)
    step = plan(job, podgroup(job, "Inqueue"), [], svc, later)  # old gang gone: the new one is created
    assert workers_created(step) == ["llama-worker-0", "llama-worker-1"]
    assert step.status.phase == Phase.PREEMPTED
    preempted = step.status.condition("Preempted")
    assert preempted is not None
    assert preempted.status == ConditionStatus.TRUE
    assert preempted.message.startswith("Preempted (PreemptionByScheduler), waiting for capacity")
    assert step.events[-1].reason == REASON_AWAITING_CAPACITY  # not a second restart (metrics count those)

    job = _again(job, step)
    waiting = [pod(job, i, attempt=1, phase="Pending", ready=False) for i in range(2)]
    step = plan(job, podgroup(job, "Inqueue"), waiting, svc, later + timedelta(seconds=15))
    assert step.status.phase == Phase.PREEMPTED  # stays so while the gang waits
    assert step.events == []

    job = _again(job, step)
    back = [pod(job, i, attempt=1) for i in range(2)]
    step = plan(job, podgroup(job, "Running"), back, svc, later + timedelta(seconds=30))
    assert step.status.phase == Phase.RUNNING
    cleared = step.status.condition("Preempted")
    assert cleared is not None
    assert cleared.status == ConditionStatus.FALSE
    assert step.status.preemption_restarts == 1
    assert step.status.failure_restarts == 0


def test_failed_restart_waits_as_queued_not_preempted() -> None:
    job, pg, svc = running_job()
    step = plan(job, pg, [pod(job, 0, phase="Failed", exit_code=1), pod(job, 1)], svc, NOW)
    job = _again(job, step)
    step = plan(job, podgroup(job, "Inqueue"), [], svc, NOW + timedelta(seconds=3))
    assert step.status.phase == Phase.QUEUED
    assert step.status.disruptions is None


def test_vanished_worker_takes_its_cause_from_the_schedulers_evict_event() -> None:
    job, pg, svc = running_job()
    events = [_evict_event("llama-worker-0", "uid-0-0")]
    step = plan(job, pg, [pod(job, 1)], svc, NOW, departures=Departures(events=events))
    [entry] = step.status.disruptions or []
    assert (entry.kind, entry.reason, entry.pod_uid) == (DisruptionKind.PREEMPTION, "Evict", "uid-0-0")
    assert entry.message == "Pod is evicted, because of reclaim"
    assert step.status.preemption_restarts == 1


def test_vanished_worker_takes_its_cause_from_its_last_state() -> None:
    job, pg, svc = running_job()
    last = pod(job, 0, disruption="DeletionByTaintManager", deleting=True)
    step = plan(job, pg, [pod(job, 1)], svc, NOW, departures=Departures(last_states=[last]))
    [entry] = step.status.disruptions or []
    assert (entry.kind, entry.reason, entry.pod_uid) == (
        DisruptionKind.NODE_LOST,
        "DeletionByTaintManager",
        "uid-0-0",
    )


def test_evicted_pod_ending_failed_is_never_a_failure() -> None:
    job, pg, svc = running_job(failurePolicy={"maxFailureRestarts": 0})
    evicted = pod(job, 0, phase="Failed", exit_code=137, disruption="EvictionByEvictionAPI")
    step = plan(job, pg, [evicted, pod(job, 1)], svc, NOW)
    assert step.status.phase == Phase.RESTARTING
    assert step.status.failure_restarts == 0
    assert (step.status.disruptions or [])[0].kind == DisruptionKind.EVICTION


# --- elastic jobs: shrink in place at >= min, grow back, restart only below min ----------------------------


def test_elastic_job_keeping_min_nodes_shrinks_in_place() -> None:
    job, pg, svc = running_job(**ELASTIC)
    victims = [pod(job, i, disruption="PreemptionByScheduler", deleting=i == 1) for i in (1, 3)]
    pods = [pod(job, 0), pod(job, 2), *victims]
    step = plan(job, pg, pods, svc, NOW)
    assert step.status.phase == Phase.RUNNING
    assert step.status.preemption_restarts == 0
    assert step.status.failure_restarts == 0
    assert deletes(step, "Pod") == ["llama-worker-3"]  # worker 1 is already going; the others stay
    assert workers_created(step) == []  # same names: replacements wait for the old pods to go
    assert [d.action for d in step.status.disruptions or []] == ["Shrunk", "Shrunk"]
    [resize] = step.status.resizes or []
    assert (resize.from_nodes, resize.to_nodes, resize.cause) == (4, 2, "Preemption")
    assert [e.reason for e in step.events] == [REASON_SHRUNK]

    # The next pass sees the same disrupted pods (terminating): nothing is recorded twice.
    job = _again(job, step)
    going = [pod(job, i, disruption="PreemptionByScheduler", deleting=True) for i in (1, 3)]
    step = plan(job, pg, [pod(job, 0), pod(job, 2), *going], svc, NOW + timedelta(seconds=1))
    assert len(step.status.disruptions or []) == 2
    assert len(step.status.resizes or []) == 1
    assert step.events == []

    # Once gone (their last states known), replacements of the same attempt are created, not re-recorded.
    job = _again(job, step)
    later = NOW + timedelta(seconds=2)
    step = plan(job, pg, [pod(job, 0), pod(job, 2)], svc, later, departures=Departures(last_states=going))
    assert workers_created(step) == ["llama-worker-1", "llama-worker-3"]
    assert len(step.status.disruptions or []) == 2
    assert (step.status.ready_nodes, step.status.world_size) == (2, 4)

    # Capacity returns: the replacements join and the growth is recorded.
    job = _again(job, step)
    step = plan(job, pg, [pod(job, i) for i in range(4)], svc, later + timedelta(seconds=30))
    assert (step.status.ready_nodes, step.status.world_size) == (4, 8)
    assert step.status.preemption_restarts == 0
    grown = (step.status.resizes or [])[-1]
    assert (grown.from_nodes, grown.to_nodes, grown.cause) == (2, 4, disruption.CAUSE_CAPACITY)
    assert [e.reason for e in step.events] == [REASON_REGROWN]


def test_victims_seen_one_by_one_read_as_one_resize() -> None:
    job, pg, svc = running_job(**ELASTIC)
    first = plan(job, pg, [pod(job, 0), pod(job, 1), pod(job, 2)], svc, NOW)
    job = _again(job, first)
    replacement = pod(job, 3, phase="Pending", ready=False)  # created by the first pass
    second = plan(job, pg, [pod(job, 0), pod(job, 1), replacement], svc, NOW + timedelta(seconds=1))
    assert [(r.from_nodes, r.to_nodes) for r in second.status.resizes or []] == [(4, 2)]
    assert len(second.status.disruptions or []) == 2


def test_elastic_job_falling_below_min_restarts_the_whole_gang() -> None:
    job, pg, svc = running_job(**ELASTIC)
    pods = [pod(job, 0), *(pod(job, i, disruption="PreemptionByScheduler") for i in (1, 2, 3))]
    step = plan(job, pg, pods, svc, NOW)
    assert step.status.phase == Phase.RESTARTING
    assert step.status.preemption_restarts == 1
    assert {d.action for d in step.status.disruptions or []} == {"Restarted"}
    assert step.status.resizes is None


def test_growth_during_startup_is_no_resize() -> None:
    job = make_job(**ELASTIC)
    job = _again(job, plan(job, None, [], None, NOW))
    pg, svc = podgroup(job, "Running"), None
    two = [pod(job, 0), pod(job, 1), *(pod(job, i, phase="Pending", ready=False) for i in (2, 3))]
    job = _again(job, plan(job, pg, two, svc, NOW + timedelta(seconds=1)))
    step = plan(job, pg, [pod(job, i) for i in range(4)], svc, NOW + timedelta(seconds=2))
    assert step.status.phase == Phase.RUNNING
    assert step.status.resizes is None


def test_histories_keep_only_the_newest_entries() -> None:
    job, pg, svc = running_job(**ELASTIC, failurePolicy={"maxPreemptionRestarts": 100})
    now = NOW
    for _ in range(HISTORY + 3):
        now += timedelta(seconds=60)
        victim = pod(job, 3, disruption="PreemptionByScheduler")
        victim["metadata"]["uid"] = f"uid-{now.timestamp()}"
        job = _again(job, plan(job, pg, [pod(job, i) for i in range(3)] + [victim], svc, now))
    status = job.status
    assert status is not None
    assert len(status.disruptions or []) == HISTORY
    assert len(status.resizes or []) == HISTORY
    assert (status.disruptions or [])[-1].time == now


def test_replacements_joining_one_by_one_read_as_one_growth() -> None:
    job, pg, svc = running_job(**ELASTIC)
    job = _again(job, plan(job, pg, [pod(job, 0), pod(job, 1)], svc, NOW))  # 4 -> 2
    pending = [pod(job, i, phase="Pending", ready=False) for i in (2, 3)]
    job = _again(job, plan(job, pg, [pod(job, 0), pod(job, 1), *pending], svc, NOW + timedelta(seconds=1)))
    three = [pod(job, 0), pod(job, 1), pod(job, 2), pending[1]]
    job = _again(job, plan(job, pg, three, svc, NOW + timedelta(seconds=20)))
    four = plan(job, pg, [pod(job, i) for i in range(4)], svc, NOW + timedelta(seconds=22))
    assert [(r.from_nodes, r.to_nodes) for r in four.status.resizes or []] == [(4, 2), (2, 4)]


def test_elastic_job_succeeds_when_the_survivors_finish_before_a_replacement_joins() -> None:
    job, pg, svc = running_job(**ELASTIC)
    survivors = [pod(job, i, phase="Succeeded", ready=False, exit_code=0) for i in (0, 2)]
    # A replacement of a lost node, scheduled on a node a survivor freed: it meets the closed rendezvous.
    late = [pod(job, 1, phase="Failed", ready=False, exit_code=1), pod(job, 3, phase="Pending", ready=False)]
    step = plan(job, pg, [*survivors, *late], svc, NOW)
    assert step.status.phase == Phase.SUCCEEDED
    assert step.status.failure_restarts == 0
    assert "llama-worker-3" in deletes(step, "Pod")  # the waiting replacement goes with the job
    assert workers_created(step) == []


def test_elastic_job_waits_for_survivors_still_finishing() -> None:
    job, pg, svc = running_job(**ELASTIC)
    pods = [pod(job, 0, phase="Succeeded", ready=False, exit_code=0), pod(job, 1), pod(job, 2), pod(job, 3)]
    step = plan(job, pg, pods, svc, NOW)
    assert step.status.phase == Phase.RUNNING
    assert deletes(step, "Pod") == []


def test_fixed_job_with_a_failed_worker_restarts_even_after_another_succeeded() -> None:
    job, pg, svc = running_job()
    pods = [
        pod(job, 0, phase="Succeeded", ready=False, exit_code=0),
        pod(job, 1, phase="Failed", exit_code=1),
    ]
    step = plan(job, pg, pods, svc, NOW)
    assert step.status.phase == Phase.RESTARTING
    assert step.status.failure_restarts == 1
