"""Usage, cost and goodput on the local cluster (Volcano + kwok): what the status says of a job's pods and of
its disruptions, checked against the pods themselves and the configured rates."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest

from api import TorchJob, contract
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.progress_endpoint import Address
from controller.torchjob.rates import Rates
from controller.torchjob.report import checkpoint_path
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.conftest import CliRun
from e2e.tests.test_torchjob_progress import SERVICE_ACCOUNT, VOLUME, job_with_account, mint
from e2e.torchjobs import operator_reconciler, status_of, torchjob, wait_for, wait_phase

RATES = Rates.model_validate({"currency": "EUR", "perHour": {"cpu": 3.6, "memoryGiB": 0.72}})


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _lifetime(pod: JsonObject) -> float:
    """The pod's start to its trainer's finish, as the kubelet (kwok) reported them."""
    trainer = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "trainer")
    return _seconds(pod["status"]["startTime"], trainer["state"]["terminated"]["finishedAt"])


async def test_undisrupted_job_usage_is_its_pods_lifetimes_costed_at_the_rates_and_all_goodput(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, cli: CliRun
) -> None:
    nodes(2, cpu="4")
    report = {
        "reason": "completed",
        "step": 200,
        "total_steps": 200,
        "loss": 0.5,
        "world_size": 2,
        "error": "",
    }
    outcome = {
        "pyroclast.dev/test-report-after": "6s",
        "pyroclast.dev/test-termination-message": json.dumps(report),
        "pyroclast.dev/test-exit-code": "0",
    }
    async with operator_reconciler(cluster, rates=RATES) as reconciler:
        client = reconciler.client
        body = torchjob("paid", nodes, cpu="2", annotations=outcome)
        await client.create(TORCHJOBS, body, namespace)
        done = await wait_phase(client, namespace, "paid", "Succeeded", 60)
        pods = [await client.get(PODS, f"paid-worker-{i}", namespace) for i in range(2)]
    held = sum(_lifetime(p) for p in pods)
    assert held >= 10  # two pods, each about 6 s
    usage = done["usage"]
    print(f"\npods held {held} s; usage {usage}; goodput {done['goodput']}")
    # 2 CPUs and 1 GiB per pod, held from each pod's start to its end
    assert usage["cpuSeconds"] == pytest.approx(2 * held, abs=1)
    assert usage["memoryGiBSeconds"] == pytest.approx(held, abs=1)
    assert usage["podSeconds"] == pytest.approx(held, abs=1)
    assert usage["gpuSeconds"] == 0
    assert usage["currency"] == "EUR"
    expected = (usage["cpuSeconds"] * 3.6 + usage["memoryGiBSeconds"] * 0.72) / 3600
    assert usage["cost"] == pytest.approx(expected)
    goodput = done["goodput"]
    assert goodput["runningSeconds"] > 0
    assert goodput["productiveSeconds"] >= 0.95 * goodput["runningSeconds"]
    assert goodput["percent"] >= 95
    assert goodput["recomputedSteps"] == 0
    assert goodput["stepSeconds"] == pytest.approx(goodput["runningSeconds"] / 200)

    # what the job measured is what `job estimate` knows: at its node count, and nothing it did not measure
    argv = ("job", "estimate", "paid", "-n", namespace, "--nodes", "2,4")
    code, out, err = await anyio.to_thread.run_sync(lambda: cli(*argv))
    print(out)
    assert code == 0, err
    assert "1 measured job(s)" in out
    assert "Steps: 200" in out
    assert "measured at 2 node(s) (1 job(s))" in out
    assert "EUR" in out
    assert "no data at 4 node(s): measured only at 2" in out


async def test_preempted_job_shows_preempted_time_and_the_steps_it_redoes(
    cluster: Cluster,
    crd: str,
    namespace: str,
    nodes: NodePool,
    priorities: tuple[str, str],
) -> None:
    low, high = priorities
    nodes(2, cpu="2")  # capacity for one 2-worker gang of 2-CPU workers
    cluster.api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": SERVICE_ACCOUNT}}
    )
    bind = Address("127.0.0.1", 0)
    options: dict[str, Any] = {
        "progress_bind": bind,
        "progress_url": "http://pyroclast-progress.invalid:8443",
    }
    scheduling: JsonObject = {"queue": "default", "priorityClassName": low, "preemptible": True}
    async with operator_reconciler(cluster, rates=RATES, **options) as reconciler:
        client = reconciler.client
        assert reconciler.progress is not None
        body = job_with_account("low", nodes, cpu="2", scheduling=scheduling, checkpoint={"volume": VOLUME})
        await client.create(TORCHJOBS, body, namespace)
        await wait_phase(client, namespace, "low", "Running")
        await reconciler.progress.listening.wait()
        # the gang trains a while before its report: status times are whole seconds, and the redone steps'
        # share of an attempt that ran under one second would be none of it
        await anyio.sleep(3)
        url = f"http://127.0.0.1:{reconciler.progress.port}{contract.PROGRESS_PATH}"
        worker = await client.get(PODS, "low-worker-0", namespace)
        job = TorchJob.from_k8s(await client.get(TORCHJOBS, "low", namespace))
        report = {"step": 127, "checkpoint": {"step": 120, "path": checkpoint_path(job, 120)}}
        async with httpx.AsyncClient(timeout=10) as http:
            headers = {"Authorization": f"Bearer {mint(cluster, namespace, worker)}"}
            answer = await http.post(url, json=report, headers=headers)
        assert answer.status_code == 202, answer.text

        async def reported() -> JsonObject | None:
            status = await status_of(client, namespace, "low")
            return status if (status.get("progress") or {}).get("step") == 127 else None

        before = await wait_for("step 127 in status.progress", reported, within=20)
        assert before["goodput"]["runningSeconds"] >= 2, before["goodput"]

        urgent = torchjob(
            "high",
            nodes,
            cpu="2",
            scheduling={**scheduling, "priorityClassName": high},
            annotations={"pyroclast.dev/test-succeed-after": "8s"},
        )
        await client.create(TORCHJOBS, urgent, namespace)
        await wait_phase(client, namespace, "low", "Preempted", 60)
        await wait_phase(client, namespace, "high", "Succeeded", 90)
        back = await wait_phase(client, namespace, "low", "Running", 90)
        # the resumed worker's next report is answered with the job's accounting, from the operator's cache
        resumed = await client.get(PODS, "low-worker-0", namespace)
        async with httpx.AsyncClient(timeout=10) as http:
            headers = {"Authorization": f"Bearer {mint(cluster, namespace, resumed)}"}
            again = await http.post(url, json={"step": 130}, headers=headers)
        assert again.status_code == 202, again.text
        accounting = again.json()["accounting"]
    assert back["preemptionRestarts"] == 1
    print(f"accounting in the progress answer: {accounting}")
    assert accounting["currency"] == "EUR"
    assert accounting["cost"] >= back["usage"]["cost"] > 0
    assert accounting["lostSeconds"]["preempted"] >= back["goodput"]["lost"]["preemptedSeconds"] >= 5
    assert accounting["goodputPercent"] < 100
    goodput = back["goodput"]
    lost = goodput["lost"]
    print(f"\nresumed after a preemption: goodput {goodput}; usage {back['usage']}")
    assert goodput["recomputedSteps"] == 127 - 120
    assert lost["preemptedSeconds"] >= 5  # at least the time the 8 s job held its nodes
    assert lost["restartingSeconds"] == 0
    assert lost["recomputedSeconds"] > 0
    total = goodput["productiveSeconds"] + sum(lost.values())
    assert total == pytest.approx(goodput["heldSeconds"])
    assert goodput["percent"] < 100
    # the first attempt's pods are settled into the usage for good
    assert back["usage"]["settledAttempts"] == 1
    assert back["usage"]["settled"]["cpuSeconds"] > 0
