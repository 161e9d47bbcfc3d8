"""Waiting for a condition in runtime tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import anyio

from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.reconcile import Request
from controller.runtime.resource import CONFIG_MAPS
from tests.virtual_time import run_virtual

API = "api/v1"


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


async def eventually(pred: Callable[[], bool], within: float = 60.0) -> None:  # a hang guard only
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.005)


def _inflight(reconcile_seconds: float) -> dict[str, Any]:
    """SIGTERM while a reconcile of `reconcile_seconds` runs, on a virtual clock; what happened, and when."""
    seen: dict[str, Any] = {"started": [], "finished": [], "cancelled": []}

    async def main() -> None:
        fake = FakeApiServer()
        fake.put_object(API, "configmaps", cm("a"))

        async def reconcile(req: Request) -> None:
            seen["started"].append((req.name, anyio.current_time()))
            try:
                await anyio.sleep(reconcile_seconds)
            except anyio.get_cancelled_exc_class():
                seen["cancelled"].append((req.name, anyio.current_time()))
                raise
            seen["finished"].append((req.name, anyio.current_time()))

        manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None, handle_signals=True)
        # Two workers: one is free, so only the drain can keep the new items from starting.
        name = f"inflight-{reconcile_seconds:g}"
        manager.add(Controller(reconcile, for_=CONFIG_MAPS, name=name, workers=2))
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run)
            await eventually(lambda: bool(seen["started"]))
            seen["sigterm"] = anyio.current_time()
            os.kill(os.getpid(), signal.SIGTERM)
            await eventually(lambda: manager._stop.is_set())  # pyright: ignore[reportPrivateUsage]
            fake.put_object(API, "configmaps", cm("b"))  # arrives while the manager drains
            fake.put_object(API, "configmaps", cm("a") | {"data": {"v": "2"}})
        seen["returned"] = anyio.current_time()

    run_virtual(main)
    return seen
