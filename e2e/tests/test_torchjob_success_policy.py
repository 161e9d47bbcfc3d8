"""successPolicy Rank0 on the rig: worker 0's exit 0 ends the job in success; the other workers' exits never
fail or restart it, and those still running are stopped by a graceful delete.

Pod outcomes are set per pod through the kwok stage annotations (e2e/cluster/__init__.py), on running pods."""

from __future__ import annotations

import logging

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import condition, operator, status_of, torchjob, wait_for, wait_phase


async def _annotate(client: Client, namespace: str, pod: str, annotations: dict[str, str]) -> None:
    await client.patch(PODS, pod, {"metadata": {"annotations": annotations}}, namespace)


async def _pods(client: Client, namespace: str) -> dict[str, JsonObject]:
    return {p["metadata"]["name"]: p for p in (await client.list(PODS, namespace)).items}


async def test_rank0_success_stops_the_others_and_ignores_their_exits(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="controller.torchjob.reconciler")
    nodes(3, cpu="4")
    body = torchjob(
        "r0",
        nodes,
        count=3,
        successPolicy="Rank0",
        # Exit code 3 would fail the job at once under AllWorkers; cleanPodPolicy None would keep every pod.
        failurePolicy={"permanentExitCodes": [3]},
        runPolicy={"cleanPodPolicy": "None"},
    )
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, body, namespace)
        await wait_phase(client, namespace, "r0", "Running")
        before = await client.list(PODS, namespace)
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in before.items}
        assert sorted(uids) == ["r0-worker-0", "r0-worker-1", "r0-worker-2"]

        # Worker 2 exits 3 while worker 0 still trains: the job goes on, nothing restarts or is replaced.
        await _annotate(
            client,
            namespace,
            "r0-worker-2",
            {"pyroclast.dev/test-fail-after": "0s", "pyroclast.dev/test-exit-code": "3"},
        )

        async def worker_2_seen() -> JsonObject | None:
            status = await status_of(client, namespace, "r0")
            return status if status.get("activeNodes") == 2 else None

        status = await wait_for("the operator sees worker 2 ended", worker_2_seen, 60)
        assert status["phase"] == "Running"
        assert status.get("failureRestarts", 0) == 0
        await anyio.sleep(2.0)  # a wrong restart would be decided within a reconcile or two
        status = await status_of(client, namespace, "r0")
        assert status["phase"] == "Running"
        pods = await _pods(client, namespace)
        assert {n: p["metadata"]["uid"] for n, p in pods.items()} == uids
        assert pods["r0-worker-2"]["status"]["phase"] == "Failed"

        # Worker 0 exits 0: success. Worker 1 (still running) is deleted gracefully; the finished ones stay.
        stops: list[JsonObject] = []
        since = (await client.list(PODS, namespace)).resource_version

        async def watch_worker_1() -> None:
            """Worker 1's updates from before the success on, until it is gone."""
            async with client.watch(
                PODS,
                namespace,
                resource_version=since,
                field_selector="metadata.name=r0-worker-1",
                allow_bookmarks=False,
            ) as events:
                async for event in events:
                    meta: JsonObject = event.object.get("metadata") or {}
                    if meta.get("deletionTimestamp"):
                        stops.append(meta)
                    if event.type == "DELETED":
                        return

        done: JsonObject = {}
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_worker_1)
                await _annotate(client, namespace, "r0-worker-0", {"pyroclast.dev/test-succeed-after": "0s"})
                done = await wait_phase(client, namespace, "r0", "Succeeded")
        # Here the watch has seen worker 1 deleted.

        succeeded = condition(done, "Succeeded")
        assert succeeded is not None
        assert succeeded["reason"] == "Rank0Succeeded"
        assert "stopping 1 unfinished worker(s): r0-worker-1" in succeeded["message"]
        assert "exits of r0-worker-2 ignored" in succeeded["message"]
        assert done.get("failureRestarts", 0) == 0
        # A graceful delete: the apiserver gave the pod a grace period (kwok then removes it at once).
        assert stops[0].get("deletionGracePeriodSeconds", 0) > 0, stops[0]
        left = await _pods(client, namespace)
        assert {n: p["status"]["phase"] for n, p in left.items()} == {
            "r0-worker-0": "Succeeded",
            "r0-worker-2": "Failed",
        }
        await wait_for("PodGroup deleted", lambda: _no_podgroups(client, namespace))
    said = [r for r in caplog.records if getattr(r, "success_policy", None) == "Rank0"]
    assert [getattr(r, "workers_stopped", None) for r in said] == [1]


async def _no_podgroups(client: Client, namespace: str) -> bool:
    return not (await client.list(PODGROUPS, namespace)).items
