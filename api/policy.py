"""What a TorchJob does when things go wrong (failurePolicy) and over its lifetime (runPolicy)."""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from api.base import KubeModel
from api.cel import rule, rules
from api.fields import duplicates

ExitCode = Annotated[StrictInt, Field(ge=1, le=255)]
_TEN_YEARS: Final = 10 * 365 * 24 * 3600
_OVERLAP_MESSAGE: Final = "an exit code cannot be both permanent and retryable"


class FailurePolicy(KubeModel):
    """Restart budgets of the whole gang. Failures and preemptions are counted separately."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "!has(self.permanentExitCodes) || !has(self.retryableExitCodes) || "
                "self.permanentExitCodes.all(c, !(c in self.retryableExitCodes))",
                _OVERLAP_MESSAGE,
                field_path=".retryableExitCodes",
            )
        )
    )

    max_failure_restarts: Annotated[StrictInt, Field(ge=0, le=1000)] = Field(
        default=3,
        description="Gang restarts after failures (a worker exiting with a retryable code, a lost node) "
        "before the job fails.",
    )
    max_preemption_restarts: Annotated[StrictInt, Field(ge=0, le=10000)] = Field(
        default=20,
        description="Gang restarts after preemptions and evictions, counted apart from failures, before the "
        "job fails.",
    )
    permanent_exit_codes: Annotated[list[ExitCode], Field(max_length=32)] | None = Field(
        default=None,
        description="Trainer exit codes that fail the job at once, without a restart.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    retryable_exit_codes: Annotated[list[ExitCode], Field(max_length=32)] | None = Field(
        default=None,
        description="If set, only these non-zero exit codes restart the gang and every other code is "
        "permanent. If unset, every code not in permanentExitCodes is retryable.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for field, codes in (
            ("permanentExitCodes", self.permanent_exit_codes),
            ("retryableExitCodes", self.retryable_exit_codes),
        ):
            if codes and (repeated := duplicates(codes, str)):
                raise ValueError(f"{field}: duplicate exit code {repeated[0]}")
        if set(self.permanent_exit_codes or ()) & set(self.retryable_exit_codes or ()):
            raise ValueError(_OVERLAP_MESSAGE)
        return self


class RunPolicy(KubeModel):
    """Lifetime of the job: suspension, deadline, clean-up."""

    suspend: StrictBool = Field(
        default=False,
        description="Suspend the job: delete its pods and PodGroup, keeping status and checkpoints; setting "
        "it back to false resumes from the newest checkpoint.",
    )
    active_deadline_seconds: Annotated[StrictInt, Field(ge=1, le=_TEN_YEARS)] | None = Field(
        default=None,
        description="Seconds the job may run (counted from its start, reset on resume) before it fails with "
        "reason DeadlineExceeded.",
    )
    ttl_seconds_after_finished: Annotated[StrictInt, Field(ge=0, le=_TEN_YEARS)] | None = Field(
        default=None, description="Delete the job this many seconds after it succeeds or fails."
    )
    clean_pod_policy: Literal["All", "Running", "None"] = Field(
        default="Running",
        description="Pods to delete when the job finishes: All, Running (those still running) or None.",
    )
