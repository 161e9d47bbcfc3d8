"""Workers taken away by the scheduler (preempt, reclaim), the kubelet (eviction) or a lost node: told apart
from crashes, recorded in status with reason and time, and answered in place for an elastic job that keeps at
least ``nodes.min`` nodes. Pure: the plan calls it with what the reconciler read."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from api import Disruption, DisruptionKind, Phase, Resize, TorchJob, TorchJobStatus
from api.status import HISTORY
from controller.runtime.objects import JsonObject
from controller.torchjob.labels import worker_name
from controller.torchjob.observe import POD_RUNNING, POD_SUCCEEDED, Worker, event_time, observe_worker

EVICT_EVENT: Final = "Evict"
"""vc-scheduler's Warning Event on a victim pod ("Pod is evicted, because of preempt|reclaim")."""
CAUSE_CAPACITY: Final = "CapacityReturned"
CAUSE_SCALED: Final = "Scaled"
"""A resize asked for: spec.nodes.count of a running elastic job changed (the scale subresource, an edit)."""
VANISHED: Final = "PodVanished"
COALESCE: Final = 10.0
"""Seconds within which shrinks for the same cause read as one resize."""
# DisruptionTarget reasons (and pod status reasons) by what caused them.
_PREEMPTION: Final = frozenset(
    {"PreemptionByScheduler", "PreemptionByKubeScheduler", "Preempting", EVICT_EVENT}
)
_NODE_LOST: Final = frozenset({"DeletionByTaintManager", "DeletionByPodGC", "NodeLost"})


def kind_of(reason: str) -> DisruptionKind:
    """Preemption (scheduler), NodeLost (taint manager, pod GC), else Eviction (kubelet, eviction API)."""
    if reason in _PREEMPTION:
        return DisruptionKind.PREEMPTION
    if reason in _NODE_LOST:
        return DisruptionKind.NODE_LOST
    return DisruptionKind.EVICTION


@dataclass(frozen=True, slots=True)
class Loss:
    """A worker of the current gang taken away, not yet recorded."""

    pod: str
    uid: str | None
    reason: str
    message: str | None = None

    @property
    def kind(self) -> DisruptionKind:
        """What took it."""
        return kind_of(self.reason)

    def describe(self) -> str:
        """One line for conditions and Events."""
        return f"{self.pod} was taken away ({self.reason})"


@dataclass(frozen=True, slots=True)
class Departures:
    """What the reconciler knows of running workers that are gone: the last state of worker pods deleted
    recently (the scheduler marks DisruptionTarget, then deletes; the pod may be gone before a reconcile sees
    the mark) and the scheduler's Evict Events (recorded asynchronously, possibly after the deletion)."""

    last_states: Sequence[JsonObject] = ()
    events: Sequence[JsonObject] = ()


NONE_DEPARTED: Final = Departures()


def losses(
    job: TorchJob, status: TorchJobStatus, current: dict[int, Worker], departures: Departures = NONE_DEPARTED
) -> list[Loss]:
    """Disrupted workers not yet recorded, then workers gone while Running, with the cause when known."""
    seen = {d.pod_uid for d in status.disruptions or [] if d.pod_uid}
    out = [
        Loss(w.name, w.uid, w.disruption)
        for w in sorted(current.values(), key=lambda w: w.index)
        if w.disruption is not None and w.phase != POD_SUCCEEDED and w.uid not in seen
    ]
    departed = (observe_worker(p) for p in departures.last_states)
    last_states = {w.name: w for w in departed if w is not None and w.disruption}
    for index in vanished(job, status, current):
        name = worker_name(job, index)
        if (last := last_states.get(name)) is not None and last.disruption is not None:
            if last.uid not in seen:  # else: the pod recorded while it was still there is now gone
                out.append(Loss(name, last.uid, last.disruption))
            continue
        event = _newest_evict(name, departures.events)
        if event is None:
            out.append(Loss(name, None, VANISHED, "worker pod disappeared while running"))
            continue
        uid = str(_involved(event).get("uid") or "") or None
        if uid is None or uid not in seen:
            out.append(Loss(name, uid, EVICT_EVENT, str(event.get("message") or "") or None))
    return out


def vanished(job: TorchJob, status: TorchJobStatus, current: Collection[int]) -> list[int]:
    """Indices of the running gang whose pod is gone (never indices a scale-up has yet to create)."""
    if status.phase != Phase.RUNNING:
        return []
    known = min(job.spec.nodes.count, status.desired_nodes or job.spec.nodes.count)
    return [i for i in range(known) if i not in current]


def _newest_evict(pod: str, events: Sequence[JsonObject]) -> JsonObject | None:
    """The newest Evict Event on a pod named `pod` (of any UID: the name is reused by replacements)."""
    mine = [e for e in events if e.get("reason") == EVICT_EVENT and _about(e, pod)]
    return max(mine, key=_event_time) if mine else None


def _involved(event: JsonObject) -> JsonObject:
    return event.get("involvedObject") or event.get("regarding") or {}


def _about(event: JsonObject, pod: str) -> bool:
    involved = _involved(event)
    return involved.get("kind") == "Pod" and involved.get("name") == pod


def _event_time(event: JsonObject) -> datetime:
    return event_time(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp"))


def remaining(current: dict[int, Worker], lost: Sequence[Loss]) -> int:
    """Workers of the gang still running after `lost` are gone."""
    gone = {loss.pod for loss in lost}
    return sum(1 for w in current.values() if w.active and w.phase == POD_RUNNING and w.name not in gone)


def can_shrink(job: TorchJob, status: TorchJobStatus, left: int) -> bool:
    """An elastic running job that keeps at least nodes.min nodes goes on without a restart."""
    return job.spec.nodes.elastic and status.phase == Phase.RUNNING and left >= job.spec.nodes.min_nodes


def record(
    status: TorchJobStatus, lost: Sequence[Loss], now: datetime, action: Literal["Restarted", "Shrunk"]
) -> None:
    """Append `lost` to the bounded disruption history."""
    entries = [
        Disruption(
            time=now,
            kind=loss.kind,
            reason=loss.reason[:256],
            pod=loss.pod,
            pod_uid=loss.uid,
            message=loss.message[:1024] if loss.message else None,
            action=action,
        )
        for loss in lost
    ]
    status.disruptions = [*(status.disruptions or []), *entries][-HISTORY:]


def resize(status: TorchJobStatus, now: datetime, before: int, after: int, cause: str) -> Resize:
    """Append a resize to the bounded history; returns it. The scheduler evicts victims, and binds
    replacements, one by one: a resize continuing the previous one (same direction and cause, within
    ``COALESCE``) extends it instead."""
    history = list(status.resizes or [])
    last = history[-1] if history else None
    if (
        last is not None
        and before == last.to_nodes
        and (after < before) == (last.to_nodes < last.from_nodes)
        and last.cause == cause
        and (now - last.time).total_seconds() <= COALESCE
    ):
        before = history.pop().from_nodes
    entry = Resize(time=now, from_nodes=before, to_nodes=after, cause=cause[:256])
    status.resizes = [*history, entry][-HISTORY:]
    return entry


def ready_nodes(current: dict[int, Worker]) -> int:
    """Workers of the gang running and ready (in the rendezvous)."""
    return sum(
        1 for w in current.values() if w.active and w.phase == POD_RUNNING and w.ready and not w.disruption
    )


def regrown(status: TorchJobStatus, current: dict[int, Worker], now: datetime) -> Resize | None:
    """After an in-place shrink of this run for lost workers, replacement workers became ready: record the
    growth. A shrink the user asked for (``Scaled``) is never regrown: the workers it drops are still ready
    while their deletes go out."""
    running = status.condition("Running")
    if status.phase != Phase.RUNNING or running is None or running.status != "True":
        return None
    since = running.last_transition_time
    ours = [r for r in status.resizes or [] if r.time >= since]
    if not ours or ours[-1].cause == CAUSE_SCALED:
        return None
    ready = ready_nodes(current)
    last = ours[-1].to_nodes
    return resize(status, now, last, ready, CAUSE_CAPACITY) if ready > last else None
