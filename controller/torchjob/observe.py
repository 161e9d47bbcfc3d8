"""What the operator sees of one TorchJob's worker pods and PodGroup: pure readings of raw API objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from api import contract
from api.constants import TRAINER_CONTAINER
from controller.runtime import objects
from controller.runtime.objects import JsonObject
from controller.torchjob.labels import ATTEMPT_LABEL, REPLICA_INDEX_LABEL
from controller.torchjob.report import failure_message

# Pod phases as the kubelet reports them.
POD_PENDING: Final = "Pending"
POD_RUNNING: Final = "Running"
POD_SUCCEEDED: Final = "Succeeded"
POD_FAILED: Final = "Failed"

# Reasons with which the kubelet, the eviction API and vc-scheduler mark a pod pushed off its node.
_DISRUPTION_REASONS: Final = frozenset(
    {"Evicted", "Preempting", "PreemptionByScheduler", "Evict", "NodeLost"}
)
_WAITING_PHASES: Final = frozenset({"Pending", "Inqueue", "Unknown"})
_EPOCH: Final = datetime.fromisoformat("0001-01-01T00:00:00+00:00")


@dataclass(frozen=True, slots=True)
class Worker:
    """One worker pod as the plan needs it."""

    name: str
    uid: str
    index: int
    attempt: int
    phase: str
    ready: bool
    deleting: bool
    exit_code: int | None
    disruption: str | None
    """Why the pod was pushed off its node (e.g. ``PreemptionByScheduler``), or None."""
    nnodes: str | None = None
    """The ``min:max`` node range torchrun was started with (PET_NNODES), if the pod says."""
    message: str | None = None
    """Why the trainer says it stopped: the report's ``error``, or the last line of a plain termination
    message (the kubelet's log tail under ``FallbackToLogsOnError``)."""

    @property
    def finished(self) -> bool:
        """Whether the pod has ended (succeeded or failed)."""
        return self.phase in (POD_SUCCEEDED, POD_FAILED)

    @property
    def active(self) -> bool:
        """Created, not finished and not being deleted."""
        return not self.finished and not self.deleting


def worker_slot(pod: JsonObject) -> tuple[int, int] | None:
    """A worker pod's (index, attempt) from its labels; None for a pod that is no worker."""
    labels = objects.labels(pod)
    try:
        return int(labels[REPLICA_INDEX_LABEL]), int(labels[ATTEMPT_LABEL])
    except (KeyError, ValueError):
        return None


def observe_worker(pod: JsonObject) -> Worker | None:
    """Read a worker pod; None for a pod without Pyroclast's index and attempt labels (not a worker)."""
    slot = worker_slot(pod)
    if slot is None:
        return None
    index, attempt = slot
    meta = objects.metadata(pod)
    status: JsonObject = pod.get("status") or {}
    conditions: list[JsonObject] = status.get("conditions") or []
    return Worker(
        name=objects.name(pod),
        uid=str(meta.get("uid", "")),
        index=index,
        attempt=attempt,
        phase=str(status.get("phase") or POD_PENDING),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        deleting=meta.get("deletionTimestamp") is not None,
        exit_code=_trainer_exit_code(status),
        disruption=_disruption(status, conditions),
        nnodes=_trainer_env(pod, contract.PET_NNODES),
        message=_trainer_message(status),
    )


def _trainer_env(pod: JsonObject, name: str) -> str | None:
    spec: JsonObject = pod.get("spec") or {}
    containers: list[JsonObject] = spec.get("containers") or []
    for container in containers:
        if container.get("name") != TRAINER_CONTAINER:
            continue
        env: list[JsonObject] = container.get("env") or []
        return next((str(e.get("value")) for e in env if e.get("name") == name), None)
    return None


def _disruption(status: JsonObject, conditions: list[JsonObject]) -> str | None:
    for cond in conditions:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            return str(cond.get("reason") or "DisruptionTarget")
    reason = status.get("reason")
    if reason in _DISRUPTION_REASONS:
        return str(reason)
    return None


def _trainer_message(status: JsonObject) -> str | None:
    statuses: list[JsonObject] = status.get("containerStatuses") or []
    trainer = next((cs for cs in statuses if cs.get("name") == TRAINER_CONTAINER), None)
    if trainer is None:
        return None
    state: JsonObject = trainer.get("state") or {}
    last: JsonObject = trainer.get("lastState") or {}
    return failure_message(state.get("terminated") or last.get("terminated") or {})


def _trainer_exit_code(status: JsonObject) -> int | None:
    """The first non-zero exit code among terminated containers, else 0 if one exited cleanly, else None."""
    codes: list[int] = []
    statuses: list[JsonObject] = status.get("containerStatuses") or []
    for cs in statuses:
        state: JsonObject = cs.get("state") or {}
        last: JsonObject = cs.get("lastState") or {}
        terminated: JsonObject | None = state.get("terminated") or last.get("terminated")
        if terminated is not None and isinstance(code := terminated.get("exitCode"), int):
            codes.append(code)
    if not codes:
        return None
    return next((c for c in codes if c != 0), 0)


@dataclass(frozen=True, slots=True)
class GangState:
    """What vc-scheduler says about a PodGroup."""

    phase: str
    reason: str
    message: str

    @property
    def summary(self) -> str:
        """One line for the Queued condition message."""
        text = f"PodGroup is {self.phase}"
        if self.reason:
            text += f" ({self.reason})"
        if self.message:
            text += f": {self.message}"
        return text


def observe_podgroup(podgroup: JsonObject, events: Sequence[JsonObject] = ()) -> GangState:
    """The scheduler's phase and its newest explanation.

    The Unschedulable condition counts if it is the newest True condition (both it and Scheduled may be
    present, upserted by type). A gang the enqueue gate keeps Pending has no condition; the reason is then
    only in the scheduler's Unschedulable events on the PodGroup, so the newest of those is used.
    """
    status: JsonObject = podgroup.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    every: list[JsonObject] = status.get("conditions") or []
    conditions = [c for c in every if c.get("status") == "True"]
    conditions.sort(key=lambda c: event_time(c.get("lastTransitionTime")))
    latest = conditions[-1] if conditions else None
    if latest is not None and latest.get("type") == "Unschedulable":
        return GangState(
            phase, str(latest.get("reason") or "Unschedulable"), str(latest.get("message") or "")
        )
    if latest is None and phase in _WAITING_PHASES:
        meta: JsonObject = podgroup.get("metadata") or {}
        name = str(meta.get("name", ""))
        mine = [e for e in events if e.get("reason") == "Unschedulable" and _about(e, name)]
        if mine:
            newest = max(mine, key=lambda e: event_time(e.get("lastTimestamp") or e.get("eventTime")))
            return GangState(phase, "Unschedulable", str(newest.get("message") or ""))
    return GangState(phase, "", "")


def _about(event: JsonObject, podgroup_name: str) -> bool:
    involved: JsonObject = event.get("involvedObject") or event.get("regarding") or {}
    return involved.get("kind") == "PodGroup" and involved.get("name") == podgroup_name


def event_time(value: object) -> datetime:
    """An API timestamp as a datetime; the epoch when absent or malformed (sorts first)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return _EPOCH
