"""How `pyroclast job` shows jobs: list rows, describe, the wait display and its exit codes (pure)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api import PodGroup, TorchJob
from controller.torchjob.observe import observe_podgroup
from pyroclast.job_cli import ProgressDisplay
from pyroclast.jobview import (
    JobDetails,
    WaitFor,
    age,
    bar,
    change_key,
    describe_text,
    jobs_table,
    state_line,
    wait_outcome,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def job(name: str = "ft", status: dict[str, Any] | None = None, **spec: Any) -> TorchJob:
    return TorchJob.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": "u-1",
                "creationTimestamp": "2026-01-01T11:55:00Z",
            },
            "spec": {"image": "i", "command": ["t.py"], **spec},
            "status": status,
        }
    )


def cond(type_: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T11:59:00Z"}  # fmt: skip


RUNNING = {
    "phase": "Running",
    "readyNodes": 2,
    "desiredNodes": 2,
    "failureRestarts": 1,
    "preemptionRestarts": 2,
    "progress": {"step": 50, "totalSteps": 200, "loss": 0.41234},
    "conditions": [cond("Running", "AllWorkersRunning", "all 2 gang members started")],
}


@pytest.mark.parametrize(
    ("delta", "shown"),
    [(timedelta(seconds=5), "5s"), (timedelta(minutes=7), "7m"), (timedelta(hours=2, minutes=5), "2h5m"),
     (timedelta(hours=9), "9h"), (timedelta(days=3, hours=1), "3d"), (-timedelta(seconds=3), "0s")],
)  # fmt: skip
def test_age_is_kubectls(delta: timedelta, shown: str) -> None:
    assert age(NOW - delta, NOW) == shown
    assert age(None, NOW) == "<unknown>"


def test_list_table_rows() -> None:
    table = jobs_table([job("a", RUNNING, nodes={"count": 2}), job("b", scheduling={"queue": "q"})], NOW)
    assert table.splitlines() == [
        "NAME   PHASE     NODES   QUEUE     RESTARTS   PROGRESS   AGE",
        "a      Running   2/2     default   1/2        50/200     5m",
        "b      Pending   0/1     q         0/0        -          5m",
    ]
    wide = jobs_table([job("a")], NOW, all_namespaces=True)
    assert wide.splitlines()[1].split()[:2] == ["ns", "a"]


def test_wait_outcome_and_exit_codes() -> None:
    queued = job(status={"phase": "Queued"})
    assert wait_outcome(queued, WaitFor.RUNNING) is None
    assert wait_outcome(job(status=RUNNING), WaitFor.RUNNING) == 0
    assert wait_outcome(job(status=RUNNING), WaitFor.FINISHED) is None
    assert wait_outcome(job(status={"phase": "Succeeded"}), WaitFor.RUNNING) == 0
    assert wait_outcome(job(status={"phase": "Failed"}), WaitFor.FINISHED) == 5
    assert wait_outcome(job(status={"phase": "Suspended"}), WaitFor.FINISHED) is None


def test_state_line_and_bar() -> None:
    assert bar(50, 200, width=8) == "[##------]  25%"
    assert bar(500, 200, width=4) == "[####] 100%"
    running = job(status=RUNNING)
    assert (
        state_line(running)
        == "ft: Running  nodes 2/2  restarts 1 failure/2 preemption  step 50/200  loss 0.4123"
    )
    assert "step 50/200 [#####---------------]  25%" in state_line(running, with_bar=True)
    waiting = job(
        status={
            "phase": "Queued",
            "conditions": [cond("Queued", "WaitingForScheduler", "PodGroup is Inqueue")],
        }
    )
    assert state_line(waiting) == "ft: Queued  nodes 0/1  PodGroup is Inqueue"


def test_progress_display_terminal_vs_plain() -> None:
    steps = [job(status={**RUNNING, "progress": {"step": s, "totalSteps": 200}}) for s in (10, 20)]
    tty = io.StringIO()
    show = ProgressDisplay(tty, tty=True)
    for j in steps:
        show(j)
    show.done()
    assert tty.getvalue().count("\r\x1b[K") == 2  # one line, rewritten in place
    assert tty.getvalue().endswith("\n")
    assert "[##" in tty.getvalue()

    plain = io.StringIO()
    show = ProgressDisplay(plain, tty=False)
    for j in [*steps, job(status={"phase": "Succeeded"})]:
        show(j)
    show.done()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2  # a step alone is no news; the phase change is
    assert "\r" not in plain.getvalue()
    assert lines[0].endswith("ft: Running  nodes 2/2  restarts 1 failure/2 preemption  step 10/200")
    assert lines[1].endswith("ft: Succeeded  nodes 0/1")
    assert change_key(steps[0]) == change_key(steps[1])


def test_describe_shows_the_gang_and_the_schedulers_reason_while_queued() -> None:
    raw_pg: dict[str, Any] = {
        "metadata": {"name": "ft-u1", "namespace": "ns"},
        "spec": {"minMember": 2, "queue": "team-a", "minResources": {"cpu": "2"}},
        "status": {"phase": "Pending"},
    }
    event = {
        "type": "Warning", "reason": "Unschedulable", "message": "queue resource quota insufficient",
        "involvedObject": {"kind": "PodGroup", "name": "ft-u1"}, "source": {"component": "volcano"},
        "lastTimestamp": "2026-01-01T11:59:30Z",
    }  # fmt: skip
    pod = {
        "metadata": {"name": "ft-worker-0"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]},
    }
    details = JobDetails(
        job=job(status={"phase": "Queued", "conditions": [cond("Queued", "WaitingForScheduler", "waiting")]}),
        podgroup=PodGroup.model_validate(raw_pg),
        gang=observe_podgroup(raw_pg, [event]),
        workers=[pod],
        events=[event],
    )
    text = describe_text(details, NOW)
    assert "Scheduler:      PodGroup is Pending (Unschedulable): queue resource quota insufficient" in text
    assert "  Min resources: cpu=2" in text
    assert "  ft-worker-0   Failed   n1     3" in text
    assert (
        "Warning   Unschedulable   30s   volcano   PodGroup/ft-u1   queue resource quota insufficient" in text
    )
    assert "Queued   True     WaitingForScheduler" in text

    running = describe_text(JobDetails(job=job(status=RUNNING)), NOW)
    assert "Scheduler:" not in running
    assert "PodGroup:\n  <none>" in running
    assert "Events:\n  <none>" in running


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ({"nprocPerNode": "gpu", "resources": {"limits": {"nvidia.com/gpu": 8}}}, "8 (nprocPerNode gpu"),
        ({"nprocPerNode": "auto", "resources": {"limits": {"nvidia.com/gpu": 4}}}, "4 (nprocPerNode auto"),
        ({"nprocPerNode": 2}, "2"),
        ({"nprocPerNode": "cpu"}, "cpu (one per CPU of the node)"),
    ],
)
def test_describe_shows_the_resolved_processes_per_node(spec: dict[str, Any], shown: str) -> None:
    text = describe_text(JobDetails(job=job(**spec)), NOW)
    line = next(ln for ln in text.splitlines() if ln.startswith("Processes/node:"))
    assert line.split(":", 1)[1].strip().startswith(shown)
    assert line.split(":", 1)[1].strip() != "gpu"


def test_describe_shows_network_topology_and_rank0_only_when_set() -> None:
    text = describe_text(
        JobDetails(
            job=job(
                scheduling={"networkTopology": {"mode": "hard", "highestTierAllowed": 1}},
                successPolicy="Rank0",
            )
        ),
        NOW,
    )
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in text.splitlines() if ":" in ln}
    assert lines["Network topology"] == "hard, up to HyperNode tier 1"
    assert lines["Success policy"].startswith("Rank0")
    plain = describe_text(JobDetails(job=job()), NOW)
    assert "Network topology" not in plain
    assert "Success policy" not in plain


def test_describe_shows_a_refused_create_instead_of_the_schedulers_words() -> None:
    refused = {
        "type": "CreateFailed", "status": "True", "reason": "FailedCreatePod",
        "message": 'creating Pod ft-worker-0 was refused (403): pods "ft-worker-0" is forbidden: '
                   'exceeded quota',
        "lastTransitionTime": "2026-01-01T11:59:00Z",
    }  # fmt: skip
    raw_pg = {"metadata": {"name": "ft-u1", "namespace": "ns"}, "spec": {"minMember": 2}, "status": {}}
    details = JobDetails(
        job=job(status={"phase": "CreateFailed", "conditions": [refused]}),
        podgroup=PodGroup.model_validate(raw_pg),
        gang=observe_podgroup(raw_pg, []),
    )
    text = describe_text(details, NOW)
    assert "Phase:" in text
    assert "CreateFailed" in text.split("Phase:", 1)[1].splitlines()[0]
    assert "Create refused:" in text
    assert "exceeded quota" in text.split("Create refused:", 1)[1].splitlines()[0]
    assert "Scheduler:" not in text  # not the misleading "0/0 tasks in gang unschedulable"
    assert "CreateFailed   True     FailedCreatePod" in text


def test_describe_shows_goodput_and_usage_with_cost() -> None:
    accounted = {
        **RUNNING,
        "usage": {
            "gpuSeconds": 7200, "cpuSeconds": 36000, "memoryGiBSeconds": 3600, "podSeconds": 3600,
            "cost": 5.5, "currency": "EUR", "updatedTime": "2026-01-01T12:00:00Z",
        },
        "goodput": {
            "heldSeconds": 3600, "productiveSeconds": 3000, "runningSeconds": 3100, "recomputedSteps": 7,
            "percent": 83.3,
            "lost": {
                "queuedSeconds": 300, "restartingSeconds": 0,
                "preemptedSeconds": 200, "recomputedSeconds": 100,
            },
        },
    }  # fmt: skip
    text = describe_text(JobDetails(job=job(status=accounted)), NOW)
    assert (
        "Goodput:        83.3% of 1h held: 50m productive; lost 5m queued, 0s restarting, 3m preempted"
        in text
    )
    assert "100s recomputing 7 step(s)" in text
    assert "Usage:          2.00 GPU-h, 10.00 CPU-h, 1.00 GiB-h memory; cost 5.50 EUR" in text
    plain = describe_text(JobDetails(job=job(status=RUNNING)), NOW)
    assert "Goodput:" not in plain
    assert "Usage:" not in plain
