"""Network-topology-aware gangs on the rig: kwok GPU nodes in two racks under one spine, described by the
HyperNodes of deploy/examples/hypernodes-racks.yaml, and vc-scheduler's network-topology-aware plugin.

A hard-mode gang that fits one rack is bound inside one rack; one that fits no single rack (though it fits the
cluster) stays Queued with the scheduler's reason, and runs across the racks once its job allows the spine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import condition, operator, status_of, torchjob, wait_for, wait_phase

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
HYPERNODES = EXAMPLES / "hypernodes-racks.yaml"
RACK_LABEL = "network.example.com/rack"
RACKS = ("rack-a", "rack-b")


@pytest.fixture
def racks(cluster: Cluster, crd: str, nodes: NodePool) -> Iterator[dict[str, str]]:
    """Two racks of two 8-GPU kwok nodes under one spine; yields {node name: rack}. The HyperNodes are
    cluster-wide, so they go with the test."""
    rack_of: dict[str, str] = {}
    for rack in RACKS:
        for name in nodes(2, cpu="32", gpus=8, labels={RACK_LABEL: rack}):
            rack_of[name] = rack
    cluster.kubectl("apply", "-f", str(HYPERNODES))
    try:
        yield rack_of
    finally:
        cluster.kubectl("delete", "-f", str(HYPERNODES), "--ignore-not-found", "--wait=false", check=False)


async def _bound(client: Client, namespace: str, want: int) -> dict[str, str] | None:
    """{pod: node} once `want` worker pods are bound."""
    pods = (await client.list(PODS, namespace)).items
    bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")}
    return bound if len(bound) == want else None


async def test_example_gang_lands_inside_one_rack(
    cluster: Cluster, namespace: str, racks: dict[str, str]
) -> None:
    job = yaml.safe_load((EXAMPLES / "torchjob-topology.yaml").read_text())
    name = job["metadata"]["name"]
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, job, namespace)
        await wait_phase(client, namespace, name, "Running", 90)
        placed = await wait_for("both workers bound", lambda: _bound(client, namespace, 2), 30)
        assert len({racks[node] for node in placed.values()}) == 1, f"gang spans racks: {placed}"
        groups = (await client.list(PODGROUPS, namespace)).items
        assert [g["spec"].get("networkTopology") for g in groups] == [
            {"mode": "hard", "highestTierAllowed": 1}
        ]


async def test_hard_gang_that_fits_no_rack_waits_with_the_reason_then_runs_over_the_spine(
    cluster: Cluster, namespace: str, racks: dict[str, str], nodes: NodePool
) -> None:
    # Three 8-GPU workers: the cluster has four such nodes, no rack more than two.
    body = torchjob(
        "wide",
        nodes,
        count=3,
        cpu="1",
        resources={"limits": {"nvidia.com/gpu": 8}},
        scheduling={"networkTopology": {"mode": "hard", "highestTierAllowed": 1}},
    )
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, body, namespace)

        async def reason() -> JsonObject | None:
            status = await status_of(client, namespace, "wide")
            queued = condition(status, "Queued")
            said = (queued or {}).get("message", "")
            # The scheduler names the HyperNode it tried and what that rack lacks.
            return status if status.get("phase") == "Queued" and "In hyperNode rack-" in said else None

        status = await wait_for("Queued with the scheduler's reason", reason, 90)
        queued = condition(status, "Queued")
        assert queued is not None
        assert queued["reason"] == "WaitingForScheduler"
        assert "Insufficient nvidia.com/gpu" in queued["message"]
        pods = (await client.list(PODS, namespace)).items
        assert len(pods) == 3
        assert all(not p["spec"].get("nodeName") for p in pods), "no gang member may be bound"

        # Allowing the spine (tier 2) is the only change, and the gang runs across both racks.
        allow = {"spec": {"scheduling": {"networkTopology": {"highestTierAllowed": 2}}}}
        await client.patch(TORCHJOBS, "wide", allow, namespace)
        await wait_phase(client, namespace, "wide", "Running", 90)
        placed = await wait_for("three workers bound", lambda: _bound(client, namespace, 3), 30)
        assert {racks[node] for node in placed.values()} == set(RACKS)
