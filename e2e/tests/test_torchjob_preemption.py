"""Preemption is not failure; elastic jobs shrink and grow in place; priorities and queues decide who runs.

The real Volcano scheduler (preempt and reclaim enabled, see e2e/cluster/volcano.py) picks the victims; kwok
runs the pods. Each test owns its node pool, so "capacity for one" is exact."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS, PODS
from controller.torchjob.kinds import PODGROUPS, QUEUES, TORCHJOBS
from controller.torchjob.labels import ATTEMPT_LABEL
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import condition, operator, status_of, torchjob, wait_for, wait_phase

QUEUE_API = "/apis/scheduling.volcano.sh/v1beta1/queues"


def _scheduling(priority: str, queue: str = "default") -> JsonObject:
    return {"queue": queue, "priorityClassName": priority, "preemptible": True}


async def _worker_pods(client: Client, namespace: str, job: str) -> list[JsonObject]:
    pods = (await client.list(PODS, namespace)).items
    return [p for p in pods if p["metadata"]["name"].startswith(f"{job}-worker-")]


async def test_higher_priority_job_preempts_a_lower_one_which_waits_then_runs_again(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, priorities: tuple[str, str]
) -> None:
    low, high = priorities
    nodes(2, cpu="2")  # capacity for one 2-worker gang of 2-CPU workers
    async with operator(cluster) as client:
        await client.create(
            TORCHJOBS, torchjob("low", nodes, cpu="2", scheduling=_scheduling(low)), namespace
        )
        await wait_phase(client, namespace, "low", "Running")

        urgent = torchjob(
            "high",
            nodes,
            cpu="2",
            scheduling=_scheduling(high),
            annotations={"pyroclast.dev/test-succeed-after": "8s"},
        )
        await client.create(TORCHJOBS, urgent, namespace)

        async def classes() -> bool:
            pgs = (await client.list(PODGROUPS, namespace)).items
            return {low, high} <= {p["spec"].get("priorityClassName") for p in pgs}

        await wait_for("each job's priority class carried to its PodGroup", classes, 15)

        await wait_phase(client, namespace, "high", "Running", 90)
        waiting = await wait_phase(client, namespace, "low", "Preempted", 30)
        preempted = condition(waiting, "Preempted")
        assert preempted is not None
        assert preempted["status"] == "True"
        assert "waiting for capacity" in preempted["message"]
        assert waiting.get("failureRestarts", 0) == 0
        assert waiting["preemptionRestarts"] == 1
        history = waiting["disruptions"]
        assert history[-1]["kind"] == "Preemption"
        assert history[-1]["reason"]
        assert history[-1]["time"]

        await wait_phase(client, namespace, "high", "Succeeded", 60)
        back = await wait_phase(client, namespace, "low", "Running", 90)
        assert back.get("failureRestarts", 0) == 0
        assert back["preemptionRestarts"] == 1
        again = condition(back, "Preempted")
        assert again is not None
        assert again["status"] == "False"


async def test_elastic_job_shrinks_to_min_under_preemption_without_a_restart_then_grows_back(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, priorities: tuple[str, str]
) -> None:
    low, high = priorities
    # One 1500m worker per node (two never fit on one), with room beside it for a small rendezvous store.
    nodes(4, cpu="2")
    async with operator(cluster) as client:
        elastic = torchjob(
            "elastic",
            nodes,
            count=4,
            cpu="1500m",
            nodes={"count": 4, "min": 2, "max": 4},
            scheduling=_scheduling(low),
        )
        await client.create(TORCHJOBS, elastic, namespace)

        async def world(size: int) -> JsonObject | None:
            status = await status_of(client, namespace, "elastic")
            ok = status.get("phase") == "Running" and status.get("worldSize") == size
            return status if ok and status.get("readyNodes") == size else None

        await wait_for("elastic job Running at world size 4", lambda: world(4), 60)
        before = {p["metadata"]["uid"] for p in await _worker_pods(client, namespace, "elastic")}

        urgent = torchjob(
            "urgent",
            nodes,
            cpu="1500m",
            scheduling=_scheduling(high),
            annotations={"pyroclast.dev/test-succeed-after": "10s"},
        )
        await client.create(TORCHJOBS, urgent, namespace)
        await wait_phase(client, namespace, "urgent", "Running", 90)
        shrunk = await wait_for("elastic job running on 2 nodes", lambda: world(2), 30)
        assert shrunk.get("preemptionRestarts", 0) == 0, "no gang restart"
        assert shrunk.get("failureRestarts", 0) == 0
        assert shrunk["resizes"][-1]["fromNodes"] == 4
        assert shrunk["resizes"][-1]["toNodes"] == 2
        taken = shrunk["disruptions"]
        assert shrunk["resizes"][-1]["cause"] == "Preemption", taken
        assert [d["kind"] for d in taken] == ["Preemption", "Preemption"]
        assert {d["action"] for d in taken} == {"Shrunk"}
        survivors = {p["metadata"]["uid"] for p in await _worker_pods(client, namespace, "elastic")}
        assert len(before & survivors) == 2, "the two workers left kept running (same pods)"

        await wait_phase(client, namespace, "urgent", "Succeeded", 60)
        grown = await wait_for("elastic job back at world size 4", lambda: world(4), 90)
        assert grown.get("preemptionRestarts", 0) == 0
        regrowth = grown["resizes"][-1]
        assert (regrowth["fromNodes"], regrowth["toNodes"], regrowth["cause"]) == (2, 4, "CapacityReturned")
        workers = await _worker_pods(client, namespace, "elastic")
        assert {p["metadata"]["labels"][ATTEMPT_LABEL] for p in workers} == {"0"}


@pytest.fixture
def queues(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """Make a Volcano Queue unique to the test: `queues(reclaimable=True)`; deleted afterwards."""
    made: list[str] = []

    def make(*, reclaimable: bool) -> str:
        name = f"tj-q-{secrets.token_hex(3)}"
        spec = {"weight": 1, "reclaimable": reclaimable}
        body = {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue", "metadata": {"name": name}}
        cluster.api.create(QUEUE_API, {**body, "spec": spec})
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.api.delete(f"{QUEUE_API}/{name}")


async def _ready(client: Client, namespace: str, name: str, nodes: int) -> bool:
    return (await status_of(client, namespace, name)).get("readyNodes") == nodes


async def _queue_open(client: Client, name: str) -> bool:
    queue = await client.get(QUEUES, name)
    return (queue.get("status") or {}).get("state") == "Open"


@pytest.mark.parametrize("reclaimable", [True, False], ids=["reclaimable", "not-reclaimable"])
async def test_cross_queue_reclaim_follows_the_queue_setting(
    cluster: Cluster,
    crd: str,
    namespace: str,
    nodes: NodePool,
    queues: Callable[..., str],
    reclaimable: bool,
) -> None:
    nodes(2, cpu="2")
    lender, borrower = queues(reclaimable=reclaimable), queues(reclaimable=True)
    async with operator(cluster) as client:
        for name in (lender, borrower):
            await wait_for(f"queue {name} Open", lambda name=name: _queue_open(client, name), 30)
        # The lender's elastic job holds the whole pool, above its half share (equal weights). Reclaim, like
        # preempt, never breaks a gang below minMember (gang plugin), so what it can take is the surplus.
        elastic = {"count": 2, "min": 1, "max": 2}
        wide = torchjob(
            "wide", nodes, cpu="1500m", nodes=elastic, scheduling={"queue": lender, "preemptible": True}
        )
        await client.create(TORCHJOBS, wide, namespace)
        await wait_for("lender at 2 nodes", lambda: _ready(client, namespace, "wide", 2), 60)
        # The borrower asks for one worker: within its share.
        share = torchjob("share", nodes, count=1, cpu="1500m", scheduling={"queue": borrower})
        await client.create(TORCHJOBS, share, namespace)
        if reclaimable:
            await wait_phase(client, namespace, "share", "Running", 60)
            lost = await status_of(client, namespace, "wide")
            assert lost["phase"] == "Running", "the lender goes on with its minimum"
            assert lost.get("preemptionRestarts", 0) == 0
            assert lost.get("failureRestarts", 0) == 0
            assert lost["disruptions"][-1]["kind"] == "Preemption"
            assert lost["disruptions"][-1]["action"] == "Shrunk"
            assert (lost["resizes"][-1]["fromNodes"], lost["resizes"][-1]["toNodes"]) == (2, 1)
        else:
            waiting = await wait_phase(client, namespace, "share", "Queued", 30)
            assert waiting.get("readyNodes", 0) == 0
            await anyio.sleep(15)  # several scheduler sessions: nothing may be taken from the lender
            kept = await status_of(client, namespace, "wide")
            assert kept["phase"] == "Running"
            assert kept.get("preemptionRestarts", 0) == 0
            assert (await status_of(client, namespace, "share"))["phase"] == "Queued"


async def test_elastic_job_losing_a_node_records_node_loss_and_keeps_running(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(3, cpu="2")
    async with operator(cluster) as client:
        spec = {"count": 3, "min": 2, "max": 3}
        await client.create(TORCHJOBS, torchjob("lossy", nodes, cpu="1500m", nodes=spec), namespace)
        await wait_for("3 nodes ready", lambda: _ready(client, namespace, "lossy", 3), 60)
        pods = (await client.list(PODS, namespace)).items
        busy = {p["spec"]["nodeName"] for p in pods if "-worker-" not in p["metadata"]["name"]}
        victim = next(
            p for p in await _worker_pods(client, namespace, "lossy") if p["spec"]["nodeName"] not in busy
        )
        node = victim["spec"]["nodeName"]
        cluster.api.delete(f"/api/v1/nodes/{node}")  # the pod garbage collector deletes its orphaned pods
        nodes.names.remove(node)

        async def lost() -> JsonObject | None:
            status = await status_of(client, namespace, "lossy")
            return status if status.get("disruptions") else None

        status = await wait_for("the node loss recorded", lost, 120)
        [entry] = status["disruptions"]
        assert entry["pod"] == victim["metadata"]["name"]
        assert entry["kind"] == "NodeLost", entry
        assert entry["action"] == "Shrunk"
        assert status["phase"] == "Running"
        assert status.get("preemptionRestarts", 0) == 0
        assert status.get("failureRestarts", 0) == 0
        assert (status["resizes"][-1]["toNodes"], status["resizes"][-1]["cause"]) == (2, "NodeLost")


async def test_kubectl_scale_grows_and_shrinks_a_running_elastic_job_in_place_with_scaled_events(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(3, cpu="2")
    async with operator(cluster) as client:
        body = torchjob("scaled", nodes, count=2, nodes={"count": 2, "min": 1, "max": 3})
        await client.create(TORCHJOBS, body, namespace)

        async def world(size: int, resized_from: int | None = None) -> JsonObject | None:
            status = await status_of(client, namespace, "scaled")
            ok = status.get("phase") == "Running" and status.get("worldSize") == size
            resize = (status.get("resizes") or [{}])[-1]
            if resized_from is not None and (resize.get("fromNodes"), resize.get("toNodes")) != (
                resized_from,
                size,
            ):
                return None
            return status if ok and status.get("readyNodes") == size else None

        async def uids() -> dict[str, str]:
            pods = await _worker_pods(client, namespace, "scaled")
            return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}

        await wait_for("elastic job Running at world size 2", lambda: world(2), 60)
        before = await uids()
        assert sorted(before) == ["scaled-worker-0", "scaled-worker-1"]

        cluster.kubectl("scale", "-n", namespace, "tj/scaled", "--replicas=3")
        grown = await wait_for("elastic job resized 2 -> 3, Running", lambda: world(3, 2), 60)
        assert (grown["resizes"][-1]["fromNodes"], grown["resizes"][-1]["toNodes"]) == (2, 3)
        assert grown["resizes"][-1]["cause"] == "Scaled"
        assert grown.get("failureRestarts", 0) == 0
        assert grown.get("preemptionRestarts", 0) == 0
        after = await uids()
        assert sorted(after) == ["scaled-worker-0", "scaled-worker-1", "scaled-worker-2"]
        assert {n: after[n] for n in before} == before, "the running workers were kept (same pods)"

        cluster.kubectl("scale", "-n", namespace, "tj/scaled", "--replicas=2")
        shrunk = await wait_for("elastic job resized 3 -> 2, Running", lambda: world(2, 3), 60)
        assert (shrunk["resizes"][-1]["fromNodes"], shrunk["resizes"][-1]["toNodes"]) == (3, 2)
        assert shrunk["resizes"][-1]["cause"] == "Scaled"

        async def gone() -> bool:
            return sorted(await uids()) == sorted(before)

        await wait_for("the highest-index worker removed", gone, 30)
        assert await uids() == before
        workers = await _worker_pods(client, namespace, "scaled")
        assert {p["metadata"]["labels"][ATTEMPT_LABEL] for p in workers} == {"0"}

        async def scaled_events() -> list[str] | None:
            events = (await client.list(EVENTS, namespace)).items
            found = [
                e["message"]
                for e in events
                if e["involvedObject"].get("name") == "scaled" and e.get("reason") == "Scaled"
            ]
            return found if len(found) == 2 else None

        messages = await wait_for("a Scaled Event for each change", scaled_events, 30)
        assert any("2 -> 3: workers added in place" in m for m in messages), messages
        assert any("3 -> 2: highest-index workers removed in place" in m for m in messages), messages
