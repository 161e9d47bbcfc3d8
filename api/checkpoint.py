"""Where a TorchJob keeps its checkpoints; the workload decides what to save, Pyroclast mounts and reports."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StrictInt, model_validator

from api.base import KubeModel
from api.cel import rule, rules
from api.duration import Duration, check_duration, duration_message, duration_rule
from api.fields import AbsolutePath, SingleKeyUnstructured

_INTERVAL = ("1s", "168h")


class Checkpoint(KubeModel):
    """A checkpoint volume mounted in every worker at `path`; path and cadence reach the workload as
    PYROCLAST_CHECKPOINT_DIR/_INTERVAL/_KEEP, and restarted workers get PYROCLAST_RESUME_FROM (the last
    committed checkpoint in status.lastCheckpoint). The workload resumes from the newest complete one."""

    volume: SingleKeyUnstructured = Field(
        description="A core VolumeSource with exactly one source, e.g. "
        "{persistentVolumeClaim: {claimName: ckpt}}. Shared storage (a ReadWriteMany claim) lets any "
        "node resume from any checkpoint."
    )
    path: AbsolutePath = Field(
        default="/checkpoints",
        description="Mount path in the trainer container (PYROCLAST_CHECKPOINT_DIR). Immutable.",
        json_schema_extra=rules(rule("self == oldSelf", "checkpoint.path is immutable")),
    )
    interval: Duration | None = Field(
        default=None,
        description="How often the workload should checkpoint, e.g. 30m (1s to 168h).",
        json_schema_extra=rules(
            rule(duration_rule(*_INTERVAL), duration_message("checkpoint.interval", *_INTERVAL))
        ),
    )
    interval_steps: Annotated[StrictInt, Field(ge=1, le=1_000_000_000)] | None = Field(
        default=None, description="Checkpoint every this many training steps."
    )
    keep: Annotated[StrictInt, Field(ge=1, le=1000)] | None = Field(
        default=None, description="How many committed checkpoints the workload keeps."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.interval is not None:
            check_duration("checkpoint.interval", self.interval, *_INTERVAL)
        return self
