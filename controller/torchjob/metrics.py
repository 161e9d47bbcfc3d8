"""TorchJob metrics, on the runtime's registry beside controller-runtime's own.

``pyroclast_torchjobs`` (phase, queue) is a gauge rebuilt from :class:`JobMetrics`'s per-job table, so a job
that changes phase or disappears moves out of its old series at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from api import Disruption, DisruptionKind, Goodput, Phase, Resize, TorchJobStatus, Usage
from controller.runtime.metrics import REGISTRY
from controller.torchjob.disruption import CAUSE_CAPACITY, CAUSE_SCALED

_Entry = TypeVar("_Entry", Disruption, Resize)
_DURATION_BUCKETS: Final = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)
_GANG_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

JOBS: Final = Gauge(
    "pyroclast_torchjobs", "TorchJobs by phase and queue", ["phase", "queue"], registry=REGISTRY
)
RESTARTS: Final = Counter(
    "pyroclast_torchjob_restarts_total", "Whole-gang restarts by cause", ["cause"], registry=REGISTRY
)
TIME_TO_RUNNING: Final = Histogram(
    "pyroclast_torchjob_time_to_running_seconds",
    "Seconds from a TorchJob's creation to its first Running",
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
TIME_QUEUED: Final = Histogram(
    "pyroclast_torchjob_queued_seconds",
    "Seconds a gang spent Queued before it ran",
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
DISRUPTIONS: Final = Counter(
    "pyroclast_torchjob_disruptions_total",
    "Workers taken by preemption, eviction or node loss, by kind and the answer (Restarted or Shrunk)",
    ["kind", "action"],
    registry=REGISTRY,
)
RESIZES: Final = Counter(
    "pyroclast_torchjob_resizes_total",
    "In-place resizes of running elastic jobs, by direction and cause",
    ["direction", "cause"],
    registry=REGISTRY,
)
USAGE_LABELS: Final = ("namespace", "queue")
GPU_SECONDS: Final = Counter(
    "pyroclast_torchjob_gpu_seconds_total",
    "GPU-seconds held by TorchJob worker pods (their requests), by namespace and queue",
    USAGE_LABELS,
    registry=REGISTRY,
)
CPU_SECONDS: Final = Counter(
    "pyroclast_torchjob_cpu_seconds_total",
    "CPU-seconds held by TorchJob worker pods (their requests), by namespace and queue",
    USAGE_LABELS,
    registry=REGISTRY,
)
MEMORY_GIB_SECONDS: Final = Counter(
    "pyroclast_torchjob_memory_gib_seconds_total",
    "Memory GiB-seconds held by TorchJob worker pods (their requests), by namespace and queue",
    USAGE_LABELS,
    registry=REGISTRY,
)
COST: Final = Counter(
    "pyroclast_torchjob_cost_total",
    "Cost of TorchJob worker pods at the operator's rates, by namespace, queue and currency",
    (*USAGE_LABELS, "currency"),
    registry=REGISTRY,
)
RUNNING_SECONDS: Final = Counter(
    "pyroclast_torchjob_running_seconds_total",
    "Seconds TorchJobs ran (productive = running - lost{cause=recomputed}), by namespace and queue",
    USAGE_LABELS,
    registry=REGISTRY,
)
LOST_SECONDS: Final = Counter(
    "pyroclast_torchjob_lost_seconds_total",
    "Seconds of TorchJobs' held time lost, by namespace, queue and cause (queued, restarting, preempted, "
    "recomputed)",
    (*USAGE_LABELS, "cause"),
    registry=REGISTRY,
)
LOST_CAUSES: Final = {
    "queued": "queued_seconds",
    "restarting": "restarting_seconds",
    "preempted": "preempted_seconds",
    "recomputed": "recomputed_seconds",
}
GANG_SIZE: Final = Histogram(
    "pyroclast_torchjob_gang_size",
    "Gang minimum (PodGroup minMember) of created gangs",
    buckets=_GANG_BUCKETS,
    registry=REGISTRY,
)

# Every known label value of the counters is exported from the start (at 0), so a dashboard shows a flat line
# rather than "No data" before the first restart, disruption or resize.
for _cause in ("failure", "preemption", "resize"):
    RESTARTS.labels(cause=_cause)
for _kind in DisruptionKind:
    RESIZES.labels(direction="down", cause=_kind.value)
    for _action in ("Restarted", "Shrunk"):
        DISRUPTIONS.labels(kind=_kind.value, action=_action)
RESIZES.labels(direction="up", cause=CAUSE_CAPACITY)
for _direction in ("up", "down"):
    RESIZES.labels(direction=_direction, cause=CAUSE_SCALED)


class JobMetrics:
    """Keeps the phase gauge in step with the jobs this process reconciles."""

    def __init__(self) -> None:
        self._jobs: dict[str, tuple[str, str]] = {}

    def observe(self, key: str, phase: Phase, queue: str) -> None:
        """Job `key` is now in `phase` in `queue`."""
        old = self._jobs.get(key)
        new = (phase.value, queue)
        if old == new:
            return
        if old is not None:
            JOBS.labels(*old).dec()
        JOBS.labels(*new).inc()
        self._jobs[key] = new

    def forget(self, key: str) -> None:
        """Job `key` is gone."""
        old = self._jobs.pop(key, None)
        if old is not None:
            JOBS.labels(*old).dec()

    @staticmethod
    def started_running(
        *, created: datetime | None, queued_since: datetime | None, first: bool, now: datetime
    ) -> None:
        """The gang reached Running: time since creation (first time only) and time spent Queued."""
        if first and created is not None:
            TIME_TO_RUNNING.observe(max((now - created).total_seconds(), 0.0))
        if queued_since is not None:
            TIME_QUEUED.observe(max((now - queued_since).total_seconds(), 0.0))

    @staticmethod
    def restarted(cause: str) -> None:
        """A gang restart for `cause` (failure or preemption)."""
        RESTARTS.labels(cause=cause).inc()

    @staticmethod
    def disruptions(old: TorchJobStatus, new: TorchJobStatus) -> None:
        """Count the disruptions and resizes `new` records beyond `old` (histories only grow at the end)."""
        for entry in _added(old.disruptions, new.disruptions):
            DISRUPTIONS.labels(kind=entry.kind.value, action=entry.action).inc()
        for entry in _added(old.resizes, new.resizes):
            direction = "down" if entry.to_nodes < entry.from_nodes else "up"
            RESIZES.labels(direction=direction, cause=entry.cause).inc()

    @staticmethod
    def accounted(namespace: str, queue: str, old: TorchJobStatus, new: TorchJobStatus) -> None:
        """Count what a written status's usage and goodput add to the ones written before. Running time is
        counted rather than productive time: a restart moves recomputed steps from productive to lost, and a
        counter never goes down."""
        labels = (namespace, queue)
        if new.usage is not None:
            before = old.usage or Usage()
            for counter, field in (
                (GPU_SECONDS, "gpu_seconds"),
                (CPU_SECONDS, "cpu_seconds"),
                (MEMORY_GIB_SECONDS, "memory_gi_b_seconds"),
            ):
                counter.labels(*labels).inc(max(getattr(new.usage, field) - getattr(before, field), 0.0))
            if new.usage.cost is not None and new.usage.currency is not None:
                COST.labels(*labels, new.usage.currency).inc(max(new.usage.cost - (before.cost or 0.0), 0.0))
        if new.goodput is not None:
            was = old.goodput or Goodput()
            RUNNING_SECONDS.labels(*labels).inc(max(new.goodput.running_seconds - was.running_seconds, 0.0))
            for cause, field in LOST_CAUSES.items():
                grown = getattr(new.goodput.lost, field) - getattr(was.lost, field)
                LOST_SECONDS.labels(*labels, cause).inc(max(grown, 0.0))

    @staticmethod
    def gang_created(min_member: int) -> None:
        """A PodGroup with `min_member` was created."""
        GANG_SIZE.observe(min_member)


def _added(old: list[_Entry] | None, new: list[_Entry] | None) -> list[_Entry]:
    """Entries of the bounded history `new` that `old` did not have."""
    before, after = old or [], new or []
    return [e for e in after if e not in before]
