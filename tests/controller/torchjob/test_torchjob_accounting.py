"""Usage and goodput ride the status writes the job needs anyway, never one of their own (reconciler, fake
API server)."""

from __future__ import annotations

import copy
from datetime import timedelta

from controller.runtime.fakeapi import FakeApiServer
from controller.torchjob.accounting import FIELDS, account
from controller.torchjob.plan import plan
from controller.torchjob.rates import Rates
from tests.controller.torchjob.plans import T0, pod, running_job
from tests.controller.torchjob.reconcilers import (
    PODS,
    job_status,
    sample,
    setup,
    step,
    writes,
)


def start_pods(fake: FakeApiServer, phase: str, started: str, finished: str | None = None) -> None:
    for obj in list(fake.objects.get(PODS, {}).values()):
        new = copy.deepcopy(obj)
        new["status"] = {
            "phase": phase,
            "startTime": started,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        if finished is not None:
            terminated = {"exitCode": 0, "finishedAt": finished}
            new["status"]["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
        fake.put_object(*PODS, new)


async def test_accounting_rides_the_status_writes_and_feeds_the_counters() -> None:
    fake, reconciler, clock = setup(resources={"requests": {"cpu": "2", "memory": "4Gi"}})
    reconciler.rates = Rates.model_validate({"perHour": {"cpu": 3.6}})
    cpu = sample("pyroclast_torchjob_cpu_seconds_total", namespace="team-a", queue="default")
    cost = sample("pyroclast_torchjob_cost_total", namespace="team-a", queue="default", currency="USD")
    running = sample("pyroclast_torchjob_running_seconds_total", namespace="team-a", queue="default")
    await step(fake, reconciler)
    start_pods(fake, "Running", "2026-11-23T12:00:00Z")
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Running"
    assert job_status(fake)["goodput"]["heldSeconds"] == 0
    before = len(fake.requests)
    for _ in range(3):  # time passes, usage and goodput grow, nothing else changes: no write
        clock.tick(100)
        await step(fake, reconciler)
    assert writes(fake, before, events=True) == []

    start_pods(fake, "Succeeded", "2026-11-23T12:00:00Z", finished="2026-11-23T12:05:00Z")
    clock.tick(10)
    await step(fake, reconciler)
    status = job_status(fake)
    assert status["phase"] == "Succeeded"
    usage = status["usage"]
    assert usage["cpuSeconds"] == 2 * 2 * 300  # two pods, 2 CPUs, 300 s each
    assert usage["memoryGiBSeconds"] == 2 * 4 * 300
    assert usage["cost"] == 2 * 2 * 300 * 3.6 / 3600
    goodput = status["goodput"]
    assert goodput["runningSeconds"] == goodput["heldSeconds"] == goodput["productiveSeconds"] == 310
    assert goodput["percent"] == 100
    assert sample("pyroclast_torchjob_cpu_seconds_total", namespace="team-a", queue="default") == cpu + 1200
    assert (
        sample("pyroclast_torchjob_cost_total", namespace="team-a", queue="default", currency="USD")
        == cost + 1200 * 3.6 / 3600
    )
    assert (
        sample("pyroclast_torchjob_running_seconds_total", namespace="team-a", queue="default")
        == running + 310
    )
    # finished: frozen, whatever time passes or pods do
    clock.tick(1000)
    fake.objects[PODS].clear()
    await step(fake, reconciler)
    assert job_status(fake)["usage"] == usage
    assert job_status(fake)["goodput"] == goodput


def test_accounting_returns_the_status_to_write_and_leaves_the_plans_own_as_made() -> None:
    job, pg, svc = running_job()
    assert job.status is not None
    pods = [pod(job, i) for i in range(2)]
    now = T0 + timedelta(seconds=100)
    step = plan(job, pg, pods, svc, now)
    made = step.status.model_copy(deep=True)
    written = account(
        job, job.status, step.status, pods, now, Rates.model_validate({"perHour": {"cpu": 3.6}})
    )
    assert step.status == made, "the plan's status is not edited"
    assert (made.usage, made.goodput) == (None, None)
    assert written.usage is not None
    assert written.goodput is not None
    as_written, as_planned = written.to_k8s(), made.to_k8s()
    assert {k: v for k, v in as_written.items() if k not in FIELDS} == as_planned
