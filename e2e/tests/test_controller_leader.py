"""Cluster: two managers, one Lease -> exactly one leader; kill it -> the other leads within 20 s,
and no reconcile ever runs in both."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

import anyio
import pytest

from controller.client import Client
from controller.controller import Controller
from controller.manager import Manager
from controller.request import Request
from controller.resource import CONFIG_MAPS, LEASES
from e2e.cluster import Cluster

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


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

        m = Manager(
            Client(client.transport),
            namespace=namespace,
            leader_election=True,
            leader_election_id=lease_name,
            leader_election_namespace=namespace,
            identity=identity,
            metrics_bind_address="0",
        )
        m.add(Controller(reconcile, for_=CONFIG_MAPS, name=f"e2e-leader-{identity}-{lease_name}"))
        return m

    managers = {"a": make("a"), "b": make("b")}
    scopes: dict[str, anyio.CancelScope] = {}
    takeover = float("inf")
    standby = ""
    async with anyio.create_task_group() as tg:
        for identity, m in managers.items():

            async def run(identity: str = identity, m: Manager = m) -> None:
                with anyio.CancelScope() as scope:
                    scopes[identity] = scope
                    await m.run()

            tg.start_soon(run)
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
