# pyright: strict
"""Volcano queue administration SDK: async functions over the controller runtime's Client, and a sync wrapper.

State changes (open/close) go through `bus.volcano.sh/v1alpha1` Command objects, as `vcctl queue operate`
does: the queue-controller owns `status.state` and would otherwise fight a direct status write
(design/volcano.md section 2). Closing drains: a Closed queue admits no new PodGroups; while PodGroups remain
the queue is Closing, and it becomes Closed when the last one is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, TypeVar

import anyio

from api.constants import VOLCANO_API_VERSION
from api.queue import Queue, QueueState
from controller.runtime.client import Client
from controller.runtime.errors import AlreadyExists, NotFound
from controller.runtime.objects import JsonObject
from controller.runtime.resource import Resource
from controller.torchjob.kinds import QUEUES, TORCHJOBS
from pyroclast.errors import EXIT_TIMEOUT, RefusedError
from scheduling.queues import JobCounts, count_jobs, job_phase, job_queue, queue_manifest, spec_patch

COMMANDS: Final = Resource("bus.volcano.sh", "v1alpha1", "Command", "commands")
COMMAND_NAMESPACE: Final = "default"
"""Namespace Commands are created in, as vcctl does; the queue-controller watches all namespaces."""
FIELD_MANAGER: Final = "pyroclast-queue"
PROTECTED_QUEUES: Final = frozenset({"root", "default"})

T = TypeVar("T")


class QueueAction(StrEnum):
    """Command actions the queue-controller understands."""

    OPEN = "OpenQueue"
    CLOSE = "CloseQueue"


class QueueInUseError(RefusedError):
    """Deleting a queue that TorchJobs still use, without force."""

    def __init__(self, name: str, jobs: Sequence[str]):
        shown = ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")
        super().__init__(
            f"queue {name} is used by {len(jobs)} TorchJob(s): {shown}. Delete or finish them first, "
            f"close the queue to stop new ones (pyroclast queue close {name}), or pass --force"
        )
        self.name = name
        self.jobs = list(jobs)


class ProtectedQueueError(RefusedError):
    """Volcano's scheduler recreates `root` and `default` and the webhook refuses to delete them."""

    def __init__(self, name: str):
        super().__init__(f"queue {name} is created and required by Volcano's scheduler; it cannot be deleted")
        self.name = name


class StateTimeoutError(RefusedError):
    """The queue-controller did not move the queue to the wanted state in time."""

    exit_code = EXIT_TIMEOUT

    def __init__(self, name: str, wanted: Sequence[QueueState], last: QueueState | None, timeout: float):
        super().__init__(
            f"queue {name} is still {last.value if last else 'without a state'} after {timeout:g}s "
            f"(wanted {' or '.join(s.value for s in wanted)}): is vc-controller-manager running with the "
            "queue-controller and the QueueCommandSync feature gate?"
        )
        self.name = name
        self.last = last


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What `apply_queues` did to one queue: `created`, `configured` or `unchanged`."""

    name: str
    action: str
    patch: JsonObject


def _queue(obj: JsonObject) -> Queue:
    return Queue.model_validate(obj)


async def get_queue(client: Client, name: str) -> Queue:
    """The queue named `name`; raises NotFound."""
    return _queue(await client.get(QUEUES, name))


async def list_queues(client: Client) -> list[Queue]:
    """Every queue in the cluster, sorted by name."""
    found = await client.list(QUEUES)
    return sorted((_queue(o) for o in found.items), key=lambda q: q.metadata.name or "")


async def list_torchjobs(client: Client, queue: str | None = None) -> list[JsonObject]:
    """TorchJobs in every namespace (only those joining `queue` when given); none when the CRD is absent."""
    try:
        jobs = (await client.list(TORCHJOBS)).items
    except NotFound:
        return []
    return [j for j in jobs if queue is None or job_queue(j) == queue]


async def job_counts(client: Client) -> dict[str, JobCounts]:
    """Running and pending TorchJobs per queue, from the TorchJobs' own status."""
    return count_jobs(await list_torchjobs(client))


async def create_queue(client: Client, queue: Queue) -> Queue:
    """Create `queue`; raises AlreadyExists. The queue-controller then opens it and sets `parent: root`."""
    return _queue(await client.create(QUEUES, queue_manifest(queue), field_manager=FIELD_MANAGER))


async def update_queue(client: Client, name: str, patch: JsonObject) -> Queue:
    """Merge-patch the queue's spec (see `scheduling.queues.update_patch`); raises NotFound."""
    return _queue(await client.patch(QUEUES, name, patch, field_manager=FIELD_MANAGER))


async def apply_queues(client: Client, queues: Sequence[Queue]) -> list[ApplyResult]:
    """Make the cluster hold every queue in `queues`: create the missing, patch the differing, and leave the
    rest alone. Running it twice changes nothing the second time. Queues not listed are never touched."""
    results: list[ApplyResult] = []
    for queue in queues:
        name = queue.metadata.name or ""
        try:
            current = await client.get(QUEUES, name)
        except NotFound:
            try:
                await create_queue(client, queue)
                results.append(ApplyResult(name, "created", {}))
                continue
            except AlreadyExists:  # created between our GET and POST: diff against it
                current = await client.get(QUEUES, name)
        patch = spec_patch(queue, current)
        if patch:
            await client.patch(QUEUES, name, patch, field_manager=FIELD_MANAGER)
            results.append(ApplyResult(name, "configured", patch))
        else:
            results.append(ApplyResult(name, "unchanged", {}))
    return results


def command_manifest(queue: JsonObject, action: QueueAction, reason: str | None = None) -> JsonObject:
    """A Command asking the queue-controller to open or close `queue` (its target needs the queue's uid)."""
    meta = queue["metadata"]
    target = {
        "apiVersion": VOLCANO_API_VERSION,
        "kind": "Queue",
        "name": meta["name"],
        "uid": meta["uid"],
    }
    cmd: JsonObject = {
        "apiVersion": COMMANDS.api_version,
        "kind": "Command",
        "metadata": {
            "generateName": f"{meta['name']}-{action.value.lower()}-",
            "namespace": COMMAND_NAMESPACE,
            "ownerReferences": [{**target, "controller": True}],
        },
        "action": action.value,
        "target": target,
    }
    if reason:
        cmd["reason"] = reason
    return cmd


async def set_queue_state(
    client: Client,
    name: str,
    action: QueueAction,
    *,
    wait: float = 30.0,
    poll: float = 0.25,
    reason: str | None = None,
) -> Queue:
    """Open or close a queue through a Command, then wait up to `wait` seconds for the queue-controller.

    Closing settles at Closed, or at Closing while PodGroups remain in the queue (they run to the end; no new
    ones are admitted). `wait=0` returns right after the Command is created. Raises NotFound for an unknown
    queue and StateTimeoutError when the state does not move.
    """
    current = await client.get(QUEUES, name)
    wanted = (QueueState.OPEN,) if action is QueueAction.OPEN else (QueueState.CLOSED, QueueState.CLOSING)
    await client.create(COMMANDS, command_manifest(current, action, reason), COMMAND_NAMESPACE)
    queue = _queue(current)
    if wait <= 0:
        return queue
    with anyio.move_on_after(wait):
        while True:
            queue = await get_queue(client, name)
            if queue.status is not None and queue.status.state in wanted:
                return queue
            await anyio.sleep(poll)
    raise StateTimeoutError(name, wanted, queue.status.state if queue.status else None, wait)


async def open_queue(client: Client, name: str, *, wait: float = 30.0) -> Queue:
    """Open a queue: the scheduler allocates in it again and new jobs are admitted."""
    return await set_queue_state(client, name, QueueAction.OPEN, wait=wait)


async def close_queue(client: Client, name: str, *, wait: float = 30.0) -> Queue:
    """Close a queue (drain): no new jobs are admitted; running ones continue. See `set_queue_state`."""
    return await set_queue_state(client, name, QueueAction.CLOSE, wait=wait)


async def delete_queue(client: Client, name: str, *, force: bool = False) -> list[str]:
    """Delete a queue; refuses (QueueInUseError) while unfinished TorchJobs join it, unless `force`.

    Succeeded and Failed jobs hold nothing and never return to a queue, so they do not block; suspended ones
    do (they queue again on resume). Returns the `namespace/name` of the blocking TorchJobs (empty unless
    forced). Raises NotFound.
    """
    if name in PROTECTED_QUEUES:
        raise ProtectedQueueError(name)
    await client.get(QUEUES, name)  # NotFound before anything else
    users = [
        f"{j['metadata'].get('namespace', '')}/{j['metadata']['name']}"
        for j in await list_torchjobs(client, name)
        if (phase := job_phase(j)) is None or not phase.finished
    ]
    if users and not force:
        raise QueueInUseError(name, sorted(users))
    await client.delete(QUEUES, name)
    return sorted(users)


# ---- sync wrapper ---------------------------------------------------------------------------------------


class QueueAdmin:
    """The same verbs, blocking: each call connects, runs the async function and returns its result.

    >>> admin = QueueAdmin("~/.kube/config")
    >>> admin.close("team-a").status.state
    """

    def __init__(self, kubeconfig: str | Path | None = None, context: str | None = None):
        self.kubeconfig = kubeconfig
        self.context = context

    def _run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        async def go() -> T:
            client = await Client.connect(self.kubeconfig, self.context)
            return await fn(client)

        return anyio.run(go)

    def get(self, name: str) -> Queue:
        """See `get_queue`."""
        return self._run(lambda c: get_queue(c, name))

    def list(self) -> list[Queue]:
        """See `list_queues`."""
        return self._run(list_queues)

    def job_counts(self) -> Mapping[str, JobCounts]:
        """See `job_counts`."""
        return self._run(job_counts)

    def create(self, queue: Queue) -> Queue:
        """See `create_queue`."""
        return self._run(lambda c: create_queue(c, queue))

    def update(self, name: str, patch: JsonObject) -> Queue:
        """See `update_queue`."""
        return self._run(lambda c: update_queue(c, name, patch))

    def apply(self, queues: Sequence[Queue]) -> list[ApplyResult]:
        """See `apply_queues`."""
        return self._run(lambda c: apply_queues(c, queues))

    def open(self, name: str, *, wait: float = 30.0) -> Queue:
        """See `open_queue`."""
        return self._run(lambda c: open_queue(c, name, wait=wait))

    def close(self, name: str, *, wait: float = 30.0) -> Queue:
        """See `close_queue`."""
        return self._run(lambda c: close_queue(c, name, wait=wait))

    def delete(self, name: str, *, force: bool = False) -> list[str]:
        """See `delete_queue`."""
        return self._run(lambda c: delete_queue(c, name, force=force))
