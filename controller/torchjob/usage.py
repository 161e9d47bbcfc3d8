"""A job's resource usage: what its worker pods held from their start to their end, every attempt together.

Pure: computed on every reconcile from the status last written and the cached pods, written only with the
status batch. A gang restart settles the attempt that ends (its pods are deleted next): their held time is
added to ``settled`` for good. Totals never go down: a pod that leaves mid-attempt (an elastic job's shrink)
counts up to the last value written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Final

from api import ResourceSeconds, TorchJob, Usage
from api.constants import TRAINER_CONTAINER
from api.quantity import parse_quantity
from controller.runtime.objects import JsonObject
from controller.torchjob.observe import worker_slot
from controller.torchjob.rates import Rates
from controller.torchjob.report import parse_time

GIB: Final = Decimal(2**30)
_FIELDS: Final = ("gpu_seconds", "cpu_seconds", "memory_gi_b_seconds", "pod_seconds")


def per_pod(job: TorchJob) -> ResourceSeconds:
    """What one worker pod holds per second: its trainer's requests, else its limits (GPUs: every */gpu)."""
    resources = job.spec.resources
    held: dict[str, Decimal] = {}
    if resources is not None:
        held.update({k: parse_quantity(v) for k, v in (resources.limits or {}).items()})
        held.update({k: parse_quantity(v) for k, v in (resources.requests or {}).items()})
    gpus = sum((v for k, v in held.items() if k.endswith("/gpu")), Decimal(0))
    return ResourceSeconds(
        gpu_seconds=float(gpus),
        cpu_seconds=float(held.get("cpu", Decimal(0))),
        memory_gi_b_seconds=float(held.get("memory", Decimal(0)) / GIB),
        pod_seconds=1.0,
    )


def lifetime(pod: JsonObject, now: datetime) -> float:
    """Seconds `pod` held its node: from its start to its trainer's finish, else to `now`; 0 unstarted."""
    status: JsonObject = pod.get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return 0.0
    statuses: list[JsonObject] = status.get("containerStatuses") or []
    empty: JsonObject = {}
    trainer = next((c for c in statuses if c.get("name") == TRAINER_CONTAINER), empty)
    state: JsonObject = trainer.get("state") or {}
    terminated: JsonObject = state.get("terminated") or {}
    finished = parse_time(terminated.get("finishedAt"))
    end = now if finished is None else min(finished, now)
    return max((end - start).total_seconds(), 0.0)


def scaled(rate: ResourceSeconds, seconds: float) -> ResourceSeconds:
    """`rate` (per second) held for `seconds`."""
    return ResourceSeconds(**{f: getattr(rate, f) * seconds for f in _FIELDS})


def added(*parts: ResourceSeconds) -> ResourceSeconds:
    """The field-wise sum of `parts`."""
    return ResourceSeconds(**{f: sum(getattr(p, f) for p in parts) for f in _FIELDS})


def highest(a: ResourceSeconds, b: ResourceSeconds) -> ResourceSeconds:
    """The field-wise maximum."""
    return ResourceSeconds(**{f: max(getattr(a, f), getattr(b, f)) for f in _FIELDS})


def minus(a: ResourceSeconds, b: ResourceSeconds) -> ResourceSeconds:
    """`a - b` field-wise, never below 0."""
    return ResourceSeconds(**{f: max(getattr(a, f) - getattr(b, f), 0.0) for f in _FIELDS})


def held(rate: ResourceSeconds, pods: Iterable[JsonObject], now: datetime) -> ResourceSeconds:
    """What `pods` held until `now`, each at `rate`."""
    return scaled(rate, sum(lifetime(p, now) for p in pods))


def usage(
    job: TorchJob,
    old: Usage | None,
    attempt: int,
    pods: Sequence[JsonObject],
    now: datetime,
    rates: Rates | None = None,
) -> Usage:
    """The usage to write with the status of a job in `attempt` (the new status's), from `old` (the usage
    last written) and the job's cached pods at `now`."""
    old = old or Usage()
    rate = per_pod(job)
    settled = old.settled or ResourceSeconds()
    written_live = minus(old, settled)  # the unsettled attempts' share as last written
    slots = [(worker_slot(p), p) for p in pods]
    unsettled = [(s[1], p) for s, p in slots if s is not None and s[1] >= old.settled_attempts]
    settled_attempts = old.settled_attempts
    if attempt > settled_attempts:  # a restart: the ending attempts' pods are settled for good
        ending = held(rate, (p for a, p in unsettled if a < attempt), now)
        settled = added(settled, highest(ending, written_live))
        settled_attempts = attempt
        live = held(rate, (p for a, p in unsettled if a >= attempt), now)
    else:
        live = highest(held(rate, (p for _, p in unsettled), now), written_live)
    total = added(settled, live)
    return Usage(
        **total.model_dump(),
        cost=None if rates is None else rates.cost(total, job.spec.scheduling.queue),
        currency=None if rates is None else rates.currency,
        settled=settled,
        settled_attempts=settled_attempts,
        updated_time=now,
    )
