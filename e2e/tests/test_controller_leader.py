"""Cluster: two managers, one Lease -> exactly one leader; kill it -> the other leads within 20 s,
and no reconcile ever runs in both; only the leader's pod carries the leader label."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

import anyio
import pytest

from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request
from controller.runtime.resource import CONFIG_MAPS, LEASES, PODS, SERVICES, Resource
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from pyroclast.operator import LEADER_LABEL, label_leader_pod
from tests.managers import contender, run_each

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")


async def eventually(pred: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.05)


async def test_one_leader_and_takeover_within_20s(cluster: Cluster, namespace: str) -> None:
    assert cluster.api is not None
    client = await Client.connect(cluster.kubeconfig)
    for i in range(5):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}, "data": {}}
        await client.create(CONFIG_MAPS, body, namespace)
    lease_name = f"pyroclast-e2e-{secrets.token_hex(3)}"
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    overlaps: list[dict[str, int]] = []
    reconciles: dict[str, int] = {"a": 0, "b": 0}

    def make(identity: str) -> Manager:
        async def reconcile(req: Request) -> None:
            in_flight[identity] += 1
            if all(in_flight.values()):
                overlaps.append(dict(in_flight))
            reconciles[identity] += 1
            await anyio.sleep(0.05)
            in_flight[identity] -= 1

        m = contender(Client(client.transport), lease_name, namespace, identity, namespace=namespace)
        m.add(Controller(reconcile, for_=CONFIG_MAPS, name=f"e2e-leader-{identity}-{lease_name}"))
        return m

    managers = {"a": make("a"), "b": make("b")}
    takeover = float("inf")
    standby = ""
    async with anyio.create_task_group() as tg:
        scopes = run_each(tg, managers)
        await eventually(lambda: any(m.is_leader for m in managers.values()), 60)
        await anyio.sleep(6)  # several renew periods
        leaders = [i for i, m in managers.items() if m.is_leader]
        assert len(leaders) == 1, f"exactly one leader, got {leaders}"
        leader = leaders[0]
        standby = "b" if leader == "a" else "a"
        assert reconciles[standby] == 0, "the standby never reconciles"
        lease = await client.get(LEASES, lease_name, namespace)
        assert lease["spec"]["holderIdentity"] == leader

        killed = time.monotonic()
        scopes[leader].cancel()  # abrupt: no graceful shutdown, no lease release
        await eventually(lambda: managers[standby].is_leader, 25)
        takeover = time.monotonic() - killed
        log.info("takeover after %.2f s", takeover)
        before = reconciles[standby]
        for i in range(5):
            await client.patch(CONFIG_MAPS, f"c{i}", {"data": {"touched": "1"}}, namespace)
        await eventually(lambda: reconciles[standby] >= before + 5, 30)
        managers[standby].stop()
    print(f"leader takeover: {takeover:.2f} s")
    assert takeover < 20.0
    assert overlaps == []
    lease = await client.get(LEASES, lease_name, namespace)
    assert lease["spec"]["holderIdentity"] == standby
    assert lease["spec"]["leaseTransitions"] == 1


async def test_only_the_leaders_pod_is_labelled_and_the_next_leader_labels_its_own(
    cluster: Cluster, namespace: str, nodes: NodePool
) -> None:
    """Two operator managers wired as `pyroclast run` wires them, POD_NAME naming two real pods: only the
    leader's pod carries `pyroclast.dev/leader`, so a Service selecting it has the leader as its only
    endpoint; the leader dies -> the other labels its own pod; the dead one's restart clears its stale
    label."""
    [node] = nodes(1, cpu="4")
    client = await Client.connect(cluster.kubeconfig)
    for name in ("op-a", "op-b"):
        labels = {"app": "op"} | ({LEADER_LABEL: "true"} if name == "op-b" else {})  # b: left by a crash
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "pyroclast/fake"}]},
        }
        await client.create(PODS, pod, namespace)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "leader-only"},
        "spec": {"selector": {"app": "op", LEADER_LABEL: "true"}, "ports": [{"port": 8443}]},
    }
    await client.create(SERVICES, service, namespace)
    lease_name = f"pyroclast-e2e-{secrets.token_hex(3)}"
    pod_labels: dict[str, dict[str, str]] = {}
    endpoints: list[str] = []  # the pods behind the Service, as the EndpointSlice controller sees them

    def make(identity: str, pod: str) -> Manager:
        m = contender(Client(client.transport), lease_name, namespace, identity, namespace=namespace)
        assert label_leader_pod(m, {"POD_NAME": pod, "POD_NAMESPACE": namespace}) is not None
        return m

    stopped = anyio.Event()

    async def poll() -> None:
        selector = "kubernetes.io/service-name=leader-only"
        while not stopped.is_set():
            for name in ("op-a", "op-b"):
                pod = await client.get(PODS, name, namespace)
                pod_labels[name] = dict(pod["metadata"].get("labels") or {})
            slices = await client.list(ENDPOINT_SLICES, namespace, label_selector=selector)
            endpoints[:] = sorted(
                e["targetRef"]["name"] for s in slices.items for e in s.get("endpoints") or []
            )
            await anyio.sleep(0.2)

    def labelled() -> list[str]:
        return sorted(n for n, labels in pod_labels.items() if labels.get(LEADER_LABEL) == "true")

    managers = {"a": make("a", "op-a"), "b": make("b", "op-b")}
    standby = ""
    async with anyio.create_task_group() as tg:
        tg.start_soon(poll)
        scopes = run_each(tg, managers)
        await eventually(lambda: any(m.is_leader for m in managers.values()), 60)
        leader = next(i for i, m in managers.items() if m.is_leader)
        standby = "b" if leader == "a" else "a"
        await eventually(lambda: labelled() == [f"op-{leader}"], 30)  # b's stale label cleared, leader's set
        await anyio.sleep(5)  # several renew periods
        assert labelled() == [f"op-{leader}"]
        assert pod_labels[f"op-{standby}"] == {"app": "op"}
        await eventually(lambda: endpoints == [f"op-{leader}"], 60)

        scopes[leader].cancel()  # abrupt: the process is gone, its pod (and label) stay until it restarts
        await eventually(lambda: managers[standby].is_leader, 25)
        await eventually(lambda: f"op-{standby}" in labelled(), 30)
        # The dead leader's container restarts (same pod): it clears its label first and stands by.
        restarted = make(f"{leader}-restarted", f"op-{leader}")
        tg.start_soon(restarted.run)
        await eventually(lambda: labelled() == [f"op-{standby}"], 30)
        await eventually(lambda: endpoints == [f"op-{standby}"], 60)
        await anyio.sleep(3)
        assert labelled() == [f"op-{standby}"]
        assert not restarted.is_leader
        restarted.stop()
        managers[standby].stop()
        stopped.set()
    lease = await client.get(LEASES, lease_name, namespace)
    assert lease["spec"]["holderIdentity"] == standby
    await client.aclose()
