"""What a job's gang held and what came of it: resource usage with its cost, and goodput.

Both are written by the operator with the status batch (never by a write of their own), so they are as fresh
as the job's latest status write; ``updatedTime`` says as of when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictInt

from api.base import KubeModel

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ResourceSeconds(KubeModel):
    """Resources held over time, summed over the job's worker pods (their requests, else limits)."""

    gpu_seconds: Seconds = Field(default=0.0, description="GPU-seconds (every */gpu resource).")
    cpu_seconds: Seconds = Field(default=0.0, description="CPU-seconds.")
    memory_gi_b_seconds: Seconds = Field(default=0.0, description="Memory GiB-seconds.")
    pod_seconds: Seconds = Field(default=0.0, description="Worker-pod-seconds (node-seconds).")


class Usage(ResourceSeconds):
    """What the worker pods held from their start to their end (or the usage's `updatedTime`), every
    attempt together, and what it cost at the operator's configured rates."""

    cost: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        default=None, description="Cost at the operator's rates (--rates); absent when none are configured."
    )
    currency: Annotated[str, Field(max_length=16)] | None = Field(
        default=None, description="Currency of `cost`, as the rates name it."
    )
    settled: ResourceSeconds | None = Field(
        default=None, description="Of the totals, what pods of earlier attempts held (they are gone)."
    )
    settled_attempts: Annotated[StrictInt, Field(ge=0)] = Field(
        default=0, description="Attempts whose pods are in `settled` (attempts 0..settledAttempts-1)."
    )
    updated_time: datetime | None = Field(default=None, description="As of when.")


class LostTime(KubeModel):
    """Seconds of the job's held time that brought no kept training step, by cause."""

    queued_seconds: Seconds = Field(
        default=0.0, description="Waiting (Pending or Queued) after the gang first ran, e.g. for a new gang."
    )
    restarting_seconds: Seconds = Field(default=0.0, description="Restarting after a failure.")
    preempted_seconds: Seconds = Field(default=0.0, description="Preempted, waiting for capacity again.")
    recomputed_seconds: Seconds = Field(
        default=0.0,
        description="Running, but redoing steps done before a stop and lost with it (after the newest "
        "checkpoint): the recomputed steps at the step time measured in their attempt.",
    )


class Goodput(KubeModel):
    """How the time since the gang first ran was spent: productive (kept training steps) or lost, by cause.

    heldSeconds = productiveSeconds + the lost seconds of every cause.
    """

    held_seconds: Seconds = Field(default=0.0, description="Seconds since the gang first ran.")
    productive_seconds: Seconds = Field(default=0.0, description="Running and making kept progress.")
    lost: LostTime = Field(default_factory=LostTime, description="Seconds lost, by cause.")
    running_seconds: Seconds = Field(default=0.0, description="Seconds Running (productive + recomputed).")
    recomputed_steps: Annotated[StrictInt, Field(ge=0)] = Field(
        default=0,
        description="Steps done again after resumes: at each stop, its step minus the checkpoint's.",
    )
    percent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = Field(
        default=None, description="100 x productiveSeconds / heldSeconds (absent before any held time)."
    )
    step_seconds: Seconds | None = Field(
        default=None, description="Mean seconds per training step measured while Running, all attempts."
    )
    attempt_running_seconds: Seconds = Field(
        default=0.0, description="runningSeconds when the current attempt began (its share is the rest)."
    )
    attempt_start_step: Annotated[StrictInt, Field(ge=0)] = Field(
        default=0, description="The step the current attempt resumed from (its checkpoint's, else 0)."
    )
    updated_time: datetime | None = Field(default=None, description="As of when.")
