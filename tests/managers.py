"""Running several managers in one test, each as if it were its own operator process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from controller.runtime.client import Client
from controller.runtime.manager import Manager


def contender(client: Client, lease: str, lease_namespace: str, identity: str, /, **options: Any) -> Manager:
    """A manager campaigning for Lease ``lease_namespace/lease`` as ``identity`` (no metrics server)."""
    return Manager(
        client,
        leader_election=True,
        leader_election_id=lease,
        leader_election_namespace=lease_namespace,
        identity=identity,
        metrics_bind_address="0",
        **options,
    )


def run_each(tg: TaskGroup, managers: Mapping[str, Manager]) -> dict[str, anyio.CancelScope]:
    """Start every manager's ``run()`` in ``tg``, each inside a cancel scope of its own.

    Cancelling a manager's scope is killing its process: no graceful shutdown, no Lease release.
    """
    scopes = {key: anyio.CancelScope() for key in managers}
    for key, manager in managers.items():

        async def run(manager: Manager = manager, scope: anyio.CancelScope = scopes[key]) -> None:
            with scope:
                await manager.run()

        tg.start_soon(run)
    return scopes
