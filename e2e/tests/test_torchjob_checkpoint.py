"""Checkpoint resume and the dedicated rendezvous store, on the local cluster (Volcano + kwok).

Workers "exit" through the kwok stage `pyroclast-test-report-after`, which leaves the workload's report (the
JSON that `workloads.train` writes to /dev/termination-log) in the trainer container's termination message.
"""

from __future__ import annotations

import json
import time

import pytest

from api import contract
from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS, PODS, SERVICES
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from controller.torchjob.labels import ATTEMPT_LABEL
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import names, operator, status_of, torchjob, wait_for, wait_phase

# Shared storage the pods would mount; kwok mounts nothing, and an NFS source needs no claim binding.
VOLUME: JsonObject = {"nfs": {"server": "nfs.example.invalid", "path": "/exports/ckpt"}}


def report(reason: str, step: int, committed: int, committed_time: float) -> str:
    return json.dumps(
        {
            "reason": reason,
            "step": step,
            "total_steps": 200,
            "loss": 0.5,
            "committed_step": committed,
            "committed_time": committed_time,
            "world_size": 2,
            "error": "",
        }
    )


async def end_pod(client: Client, namespace: str, name: str, message: str, exit_code: int) -> None:
    annotations = {
        "pyroclast.dev/test-report-after": "0s",
        "pyroclast.dev/test-termination-message": message,
        "pyroclast.dev/test-exit-code": str(exit_code),
    }
    await client.patch(PODS, name, {"metadata": {"annotations": annotations}}, namespace)


def trainer_of(pod: JsonObject) -> JsonObject:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "trainer")


async def test_killed_job_restarts_from_its_last_checkpoint_and_status_shows_it(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        body = torchjob("ckpt", nodes, checkpoint={"volume": VOLUME, "intervalSteps": 10})
        await client.create(TORCHJOBS, body, namespace)
        await wait_phase(client, namespace, "ckpt", "Running")
        first = await client.get(PODS, "ckpt-worker-0", namespace)
        assert contract.RESUME_FROM not in {e["name"] for e in trainer_of(first)["env"]}

        committed = int(time.time()) - 30
        await end_pod(client, namespace, "ckpt-worker-0", report("failed", 127, 120, committed), 1)

        async def restarted() -> JsonObject | None:
            status = await status_of(client, namespace, "ckpt")
            ok = status.get("failureRestarts") == 1 and status.get("phase") == "Running"
            return status if ok else None

        status = await wait_for("Running again after one failure restart", restarted, 60)
        last = status["lastCheckpoint"]
        assert last["step"] == 120
        assert last["path"] == "/checkpoints/step-000000000120"
        assert last["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(committed))
        assert status["progress"]["step"] == 127
        assert status["progress"]["totalSteps"] == 200

        for name in ("ckpt-worker-0", "ckpt-worker-1"):
            pod = await client.get(PODS, name, namespace)
            assert pod["metadata"]["labels"][ATTEMPT_LABEL] == "1"
            trainer = trainer_of(pod)
            env = {e["name"]: e.get("value") for e in trainer["env"]}
            assert env[contract.RESUME_FROM] == "/checkpoints/step-000000000120"
            assert env[contract.CHECKPOINT_DIR] == "/checkpoints"
            assert env[contract.CHECKPOINT_INTERVAL] == "10"
            mount = next(m for m in trainer["volumeMounts"] if m["mountPath"] == "/checkpoints")
            volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
            assert volume["nfs"] == VOLUME["nfs"]

        # the resumed attempt completes; its final checkpoint and progress are the status's last word
        done_at = int(time.time())
        for name in ("ckpt-worker-0", "ckpt-worker-1"):
            await end_pod(client, namespace, name, report("completed", 200, 200, done_at), 0)
        done = await wait_phase(client, namespace, "ckpt", "Succeeded")
        assert done["lastCheckpoint"]["step"] == 200
        assert done["progress"]["step"] == 200
        assert done["failureRestarts"] == 1

        async def checkpoint_events() -> list[str] | None:  # Events are recorded in the background
            events = (await client.list(EVENTS, namespace)).items
            messages = [e["message"] for e in events if e["reason"] == "CheckpointCommitted"]
            return messages if any("step 120" in m for m in messages) else None

        messages = await wait_for("the CheckpointCommitted Event of step 120", checkpoint_events, within=10)
        assert any("step 120" in m for m in messages), messages


async def test_elastic_job_store_runs_outside_the_gang_and_survives_a_worker(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        body = torchjob("elastic", nodes, nodes={"count": 2, "min": 1, "max": 3})
        await client.create(TORCHJOBS, body, namespace)
        await wait_phase(client, namespace, "elastic", "Running")
        assert "elastic-rdzv" in await names(client, SERVICES, namespace)

        async def store_running() -> JsonObject | None:
            pod = await client.get(PODS, "elastic-rendezvous", namespace)
            return pod if pod.get("status", {}).get("phase") == "Running" else None

        store = await wait_for("rendezvous pod Running", store_running, 60)
        assert store["spec"]["nodeName"] in nodes.names
        # a one-member PodGroup of its own (the operator's), in the job's queue, apart from the workers' gang
        groups = {g["metadata"]["name"]: g for g in (await client.list(PODGROUPS, namespace)).items}
        assert store["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "elastic-rendezvous"
        own = groups["elastic-rendezvous"]
        assert own["spec"]["minMember"] == 1
        assert own["spec"]["queue"] == "default"
        assert len(groups) == 2  # pg-controller made none for it
        gang = groups[(await status_of(client, namespace, "elastic"))["podGroupName"]]
        assert gang["spec"]["minMember"] == 1
        worker = await client.get(PODS, "elastic-worker-0", namespace)
        env = {e["name"]: e.get("value") for e in trainer_of(worker)["env"]}
        assert env[contract.PET_RDZV_ENDPOINT] == f"elastic-rdzv.{namespace}.svc:29400"
        assert "is_host=0" in env[contract.PET_RDZV_CONF]

        # worker 0 (the store's host in a fixed-size gang) is lost: the store is untouched, the job goes on
        await end_pod(client, namespace, "elastic-worker-0", report("failed", 3, 0, time.time()), 137)

        async def replaced() -> JsonObject | None:
            status = await status_of(client, namespace, "elastic")
            pod = await client.get(PODS, "elastic-worker-0", namespace)
            fresh = pod["metadata"]["uid"] != worker["metadata"]["uid"]
            return status if fresh and status.get("phase") == "Running" else None

        status = await wait_for("worker 0 replaced and the job Running", replaced, 60)
        assert status["phase"] == "Running"
        again = await client.get(PODS, "elastic-rendezvous", namespace)
        assert again["metadata"]["uid"] == store["metadata"]["uid"]
        assert again["status"]["phase"] == "Running"

        await client.patch(TORCHJOBS, "elastic", {"spec": {"runPolicy": {"suspend": True}}}, namespace)

        async def store_gone() -> bool:
            return "elastic-rendezvous" not in await names(client, PODS, namespace)

        await wait_for("store deleted while suspended (no quota held)", store_gone, 60)

        async def groups_gone() -> bool:
            return not (await client.list(PODGROUPS, namespace)).items

        await wait_for("every PodGroup deleted while suspended", groups_gone, 60)


pytestmark = pytest.mark.slow
