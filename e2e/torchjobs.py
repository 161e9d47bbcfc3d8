"""TorchJob helpers for cluster tests and benchmarks: manifests (small CPU gangs pinned to a test's own kwok
nodes), the operator run in process, and polling for status."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from controller.runtime.client import Client
from controller.runtime.errors import TransportError
from controller.runtime.manager import Manager
from controller.runtime.objects import JsonObject
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.reconciler import TorchJobReconciler
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool


def torchjob(
    name: str,
    pool: NodePool | None,
    *,
    count: int = 2,
    cpu: str | None = "1",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> JsonObject:
    """A fixed-size job of `count` workers requesting `cpu` each (no resources when None), on `pool`'s nodes.

    `annotations` reach every worker pod, which is how tests drive kwok outcomes
    (`pyroclast.dev/test-succeed-after`, ...); `spec` adds or replaces top-level spec fields."""
    template: JsonObject = {"metadata": {"annotations": annotations or {}}}
    if pool is not None:
        template["spec"] = {"nodeSelector": pool.node_selector}
    body: JsonObject = {
        "image": "example.invalid/train:1",
        "command": ["-m", "train"],
        "nprocPerNode": 1,
        "nodes": {"count": count},
        "template": template,
    }
    if cpu is not None:
        body["resources"] = {"requests": {"cpu": cpu, "memory": "1Gi"}}
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": name},
        "spec": {**body, **spec},
    }


@asynccontextmanager
async def operator(cluster: Cluster) -> AsyncIterator[Client]:
    """The operator running in this process against the cluster; yields its client."""
    async with operator_reconciler(cluster) as reconciler:
        yield reconciler.client


@asynccontextmanager
async def operator_reconciler(cluster: Cluster, **options: Any) -> AsyncIterator[TorchJobReconciler]:
    """As :func:`operator`, with `options` for :class:`TorchJobReconciler` (e.g. ``progress_bind``); yields
    the reconciler."""
    assert cluster.api is not None  # writes the admin kubeconfig
    manager = await Manager.connect(cluster.kubeconfig, metrics_bind_address="0", sync_period=None)
    reconciler = TorchJobReconciler(manager, **options)
    manager.add(reconciler.controller())
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        try:
            yield reconciler
        finally:
            manager.stop()


async def status_of(client: Client, namespace: str, name: str) -> JsonObject:
    return (await client.get(TORCHJOBS, name, namespace)).get("status") or {}


async def wait_for(what: str, probe: Callable[[], Any], within: float = 60.0) -> Any:
    """Poll the async `probe` until it returns something truthy."""
    last: Any = None
    with anyio.move_on_after(within):
        while True:
            try:
                last = await probe()
            except TransportError as err:  # a dropped keep-alive connection; the next poll reconnects
                last = err
            else:
                if last:
                    return last
            await anyio.sleep(0.25)
    raise AssertionError(f"timed out after {within} s waiting for {what}; last: {last!r}")


async def wait_phase(
    client: Client, namespace: str, name: str, phase: str, within: float = 60.0
) -> JsonObject:
    seen: list[str] = []

    async def probe() -> JsonObject | None:
        status = await status_of(client, namespace, name)
        if status.get("phase") and (not seen or seen[-1] != status["phase"]):
            seen.append(status["phase"])
        return status if status.get("phase") == phase else None

    try:
        return await wait_for(f"phase {phase}", probe, within)
    except AssertionError as err:
        raise AssertionError(f"{err}; phases seen: {seen}") from None


async def names(client: Client, resource: Any, namespace: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in (await client.list(resource, namespace)).items)


def condition(status: JsonObject, type_: str) -> JsonObject | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM an operator process started by a test; killed if it ignores the signal for 40 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
