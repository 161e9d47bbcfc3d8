"""Manager: endpoints, readiness after sync, leader-only controllers, failover, SIGTERM, sync timeout."""

from __future__ import annotations

import os
import signal

import anyio
import httpx
import pytest

from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.leader import LeaderElectionLost
from controller.runtime.manager import CacheSyncTimeout, Manager
from controller.runtime.reconcile import Request
from controller.runtime.resource import CONFIG_MAPS
from tests.controller.runtime.waiting import API, _inflight, cm, eventually


async def test_metrics_health_and_ready_endpoints() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("a"))
    done: list[str] = []

    async def reconcile(req: Request) -> None:
        done.append(req.name)

    manager = Manager(
        Client(fake),
        metrics_bind_address="127.0.0.1:0",
        health_probe_bind_address="127.0.0.1:0",
        sync_period=None,
    )
    manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="endpoints"))
    body = ""
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: len(done) == 1)
        async with httpx.AsyncClient() as http:
            probes = f"http://127.0.0.1:{manager.ports['probes']}"
            assert (await http.get(f"{probes}/healthz")).status_code == 200
            assert (await http.get(f"{probes}/readyz")).text == "ok\n"
            assert (await http.get(f"{probes}/nope")).status_code == 404
            body = (await http.get(f"http://127.0.0.1:{manager.ports['metrics']}/metrics")).text
        manager.stop()
    assert 'controller_runtime_reconcile_total{controller="endpoints",result="success"} 1.0' in body
    assert 'controller_runtime_max_concurrent_reconciles{controller="endpoints"} 1.0' in body
    assert "workqueue_adds_total" in body
    assert "rest_client_requests_total" in body


async def test_cache_sync_timeout() -> None:
    fake = FakeApiServer()
    fake.unreachable = True
    manager = Manager(Client(fake), metrics_bind_address="0", cache_sync_timeout=0.2, sync_period=None)
    manager.informer(CONFIG_MAPS)
    with pytest.raises(CacheSyncTimeout):
        await manager.run()


async def test_two_managers_one_leader_and_failover_without_overlap() -> None:
    fake = FakeApiServer()
    for i in range(3):
        fake.put_object(API, "configmaps", cm(f"c{i}"))
    active: dict[str, int] = {}
    overlaps: list[dict[str, int]] = []
    reconciles: dict[str, int] = {"m0": 0, "m1": 0}

    def make(identity: str) -> Manager:
        async def reconcile(req: Request) -> None:
            active[identity] = active.get(identity, 0) + 1
            if len([k for k, v in active.items() if v]) > 1:
                overlaps.append(dict(active))
            reconciles[identity] += 1
            await anyio.sleep(0.01)
            active[identity] -= 1

        m = Manager(
            Client(fake),
            metrics_bind_address="0",
            sync_period=None,
            leader_election=True,
            leader_election_id="op",
            leader_election_namespace="ns",
            identity=identity,
            lease_duration=0.6,
            renew_deadline=0.4,
            retry_period=0.1,
        )
        m.add(Controller(reconcile, for_=CONFIG_MAPS, name=f"failover-{identity}"))
        return m

    managers = [make("m0"), make("m1")]
    scopes: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as tg:
        for m in managers:

            async def run(m: Manager = m) -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await m.run()

            tg.start_soon(run)
        await eventually(lambda: sum(m.is_leader for m in managers) == 1)
        await anyio.sleep(0.5)
        assert sum(m.is_leader for m in managers) == 1
        leader = next(i for i, m in enumerate(managers) if m.is_leader)
        other = managers[1 - leader]
        assert reconciles[other.elector.identity if other.elector else ""] == 0, "standby never reconciles"
        scopes[leader].cancel()
        await eventually(lambda: other.is_leader)
        for i in range(3):
            fake.put_object(API, "configmaps", cm(f"c{i}"))
        await eventually(lambda: reconciles[other.elector.identity if other.elector else ""] >= 3)
        other.stop()
    assert overlaps == []


async def test_sigterm_stops_gracefully() -> None:
    fake = FakeApiServer()
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None, handle_signals=True)
    manager.informer(CONFIG_MAPS)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run)
            await eventually(lambda: manager.elected.is_set())
            await anyio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)
    assert not manager.is_leader


async def test_lost_leadership_exits_with_error() -> None:
    fake = FakeApiServer()
    manager = Manager(
        Client(fake),
        metrics_bind_address="0",
        sync_period=None,
        leader_election=True,
        leader_election_id="op",
        leader_election_namespace="ns",
        lease_duration=0.6,
        renew_deadline=0.4,
        retry_period=0.1,
    )
    manager.informer(CONFIG_MAPS)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:

            async def cut() -> None:
                await eventually(lambda: manager.is_leader)
                fake.unreachable = True

            tg.start_soon(cut)
            with pytest.raises(LeaderElectionLost):
                await manager.run()


def test_sigterm_lets_the_reconcile_in_flight_finish_and_starts_no_new_one() -> None:
    seen = _inflight(20.0)
    ((name, started),) = seen["started"]  # neither "b" nor the second change of "a" was reconciled
    assert name == "a"
    assert [n for n, _ in seen["finished"]] == ["a"]
    assert seen["cancelled"] == []
    assert seen["finished"][0][1] == pytest.approx(started + 20.0)
    assert seen["returned"] == pytest.approx(seen["finished"][0][1], abs=0.5)  # exits once it is done


def test_a_reconcile_longer_than_the_30s_grace_is_cancelled_at_30s() -> None:
    seen = _inflight(100.0)
    assert seen["finished"] == []
    ((name, cancelled_at),) = seen["cancelled"]
    assert name == "a"
    assert cancelled_at == pytest.approx(seen["sigterm"] + 30.0, abs=0.5)
    assert [n for n, _ in seen["started"]] == ["a"]


async def test_readyz_is_not_ready_until_every_cache_synced() -> None:
    fake = FakeApiServer()
    fake.put_object(API, "configmaps", cm("a"))
    fake.unreachable = True  # the first LIST fails: the informer cannot sync
    manager = Manager(
        Client(fake), metrics_bind_address="0", health_probe_bind_address="127.0.0.1:0", sync_period=None
    )
    informer = manager.informer(CONFIG_MAPS)
    answers: list[tuple[int, str]] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        await eventually(lambda: "probes" in manager.ports)
        probes = f"http://127.0.0.1:{manager.ports['probes']}"
        async with httpx.AsyncClient() as http:
            await eventually(lambda: fake.requests != [])  # a LIST was tried, and refused
            ready = await http.get(f"{probes}/readyz")
            answers.append((ready.status_code, ready.text))
            assert (await http.get(f"{probes}/healthz")).status_code == 200  # alive, only not ready
            assert not informer.has_synced
            fake.unreachable = False
            await informer.wait_synced()
            ready = await http.get(f"{probes}/readyz")
            answers.append((ready.status_code, ready.text))
        manager.stop()
    assert answers == [(500, "failed: informers-synced\n"), (200, "ok\n")]
