"""Cluster: the informer keeps an exact mirror of 1,000 ConfigMaps through an apiserver restart
and through an etcd compaction that forces 410 Gone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

from controller.runtime.client import Client
from controller.runtime.informer import Informer, InformerEvent
from controller.runtime.resource import CONFIG_MAPS
from e2e.cluster import Cluster

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

N = 1000


async def eventually(pred: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.1)


async def for_each(items: list[str], fn: Callable[[str], Any], concurrency: int = 16) -> None:
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(item: str) -> None:
        async with limiter:
            await fn(item)

    async with anyio.create_task_group() as tg:
        for item in items:
            tg.start_soon(one, item)


def configmap(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


async def truth(client: Client, ns: str) -> dict[str, str]:
    listed = await client.list(CONFIG_MAPS, ns, resource_version="")
    return {f"{ns}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in listed.items}


def mirror(informer: Informer) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in informer.cache:
        obj = informer.cache.get(key, copy=False)
        if obj is not None:
            out[key] = str(obj["metadata"]["resourceVersion"])
    return out


async def churn(client: Client, ns: str, round_: int) -> set[str]:
    """Delete 100, update 100, create 100; returns the deleted keys."""
    deleted = [f"cm-{i:04d}" for i in range(round_ * 100, round_ * 100 + 100)]
    updated = [f"cm-{i:04d}" for i in range(500 + round_ * 100, 600 + round_ * 100)]
    created = [f"new-{round_}-{i:03d}" for i in range(100)]

    async def delete(name: str) -> None:
        await client.delete(CONFIG_MAPS, name, ns)

    async def update(name: str) -> None:
        await client.patch(CONFIG_MAPS, name, {"data": {"v": f"r{round_}"}}, ns)

    async def create(name: str) -> None:
        await client.create(CONFIG_MAPS, configmap(name, "new"), ns)

    await for_each(deleted, delete)
    await for_each(updated, update)
    await for_each(created, create)
    return {f"{ns}/{n}" for n in deleted}


async def setup(cluster: Cluster, ns: str) -> Client:
    assert cluster.api is not None  # writes the admin kubeconfig
    client = await Client.connect(cluster.kubeconfig)

    async def create(name: str) -> None:
        await client.create(CONFIG_MAPS, configmap(name, "0"), ns)

    await for_each([f"cm-{i:04d}" for i in range(N)], create)
    return client


async def test_mirror_survives_apiserver_restart(cluster: Cluster, namespace: str) -> None:
    client = await setup(cluster, namespace)
    informer = Informer(client, CONFIG_MAPS, namespace=namespace, watchdog_timeout=30)
    deletes: list[InformerEvent] = []
    informer.add_handler(lambda e: deletes.append(e) if e.type == "delete" else None)
    gone_keys: set[str] = set()
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        assert await informer.wait_synced(60)
        expected = await truth(client, namespace)
        # Ours plus the CA bundle KCM's root-CA publisher puts in every namespace, as in any cluster.
        assert len(expected) == N + 1
        assert f"{namespace}/kube-root-ca.crt" in expected
        await eventually(lambda: mirror(informer) == expected, 30)

        start = anyio.current_time()
        await anyio.to_thread.run_sync(cluster.restart, "kube-apiserver")
        log.info("apiserver restarted in %.1f s", anyio.current_time() - start)
        gone_keys = await churn(client, namespace, 0)
        expected = await truth(client, namespace)
        await eventually(lambda: mirror(informer) == expected, 120)
        await eventually(lambda: informer.pending == 0, 30)
        tg.cancel_scope.cancel()
    assert {f"{namespace}/{d.obj['metadata']['name']}" for d in deletes} == gone_keys
    stats = informer.reflector.stats
    log.info("reflector stats after restart: %s", stats)
    assert stats.watches >= 2, "the watch was re-established after the restart"


async def test_mirror_survives_etcd_compaction_forcing_410(cluster: Cluster, namespace: str) -> None:
    client = await setup(cluster, namespace)
    informer = Informer(client, CONFIG_MAPS, namespace=namespace, watchdog_timeout=30)
    deletes: list[InformerEvent] = []
    informer.add_handler(lambda e: deletes.append(e) if e.type == "delete" else None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)
        assert await informer.wait_synced(60)
        expected = await truth(client, namespace)
        await eventually(lambda: mirror(informer) == expected, 30)
        tg.cancel_scope.cancel()  # disconnected from here on
    # While disconnected: changes, then compaction past the informer's RV, then a fresh watch cache.
    gone_keys = await churn(client, namespace, 1)
    revision = await anyio.to_thread.run_sync(cluster.compact_etcd)
    log.info("compacted etcd to revision %d; informer RV %s", revision, informer.reflector.last_sync_rv)
    await anyio.to_thread.run_sync(cluster.restart, "kube-apiserver")
    async with anyio.create_task_group() as tg:
        tg.start_soon(informer.run)  # resumes: re-watch from the old RV -> 410 -> relist
        expected = await truth(client, namespace)
        await eventually(lambda: mirror(informer) == expected, 120)
        await eventually(lambda: informer.pending == 0, 30)
        tg.cancel_scope.cancel()
    stats = informer.reflector.stats
    log.info("reflector stats after compaction: %s", stats)
    assert stats.gone >= 1, "the resumed watch at a compacted RV was answered 410"
    assert stats.lists >= 2, "and the informer relisted"
    tombstones = {f"{namespace}/{d.obj['metadata']['name']}" for d in deletes if d.final_state_unknown}
    assert tombstones == gone_keys, "deletes missed while disconnected arrive as final-state-unknown"
