"""A create the apiserver refuses, made visible on the TorchJob (pure: no I/O).

A 4xx answer to a PodGroup, Service or worker-pod create (a priority class that does not exist, a
namespace enforcing Pod Security, an invalid pass-through field, an exhausted ResourceQuota) is no
transient fault of the operator: the user must act, so the job says so. The ``CreateFailed`` condition
quotes the apiserver, a Warning Event ``FailedCreate<Kind>`` (Kubeflow's reason names) records each
distinct refusal once, and a job that is not running yet shows the phase ``CreateFailed``. The reconciler
keeps retrying with backoff (a quota may free up); the first pass with no refused create (its creates
succeeded, or it needs none any more: suspended, finished) turns the condition False (reason Resolved),
and the plan moves the phase on.

The first worker of a new job is created as a server-side dry run first (strict field validation), so the
pod template's pass-through fields are checked by the apiserver before the gang exists. A dry run refused
as invalid (400, 422) is :attr:`Refusal.final`: only an edit of the job can change the answer, and the edit
brings the job back, so it is not retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from api import ConditionStatus, ConditionType, Phase, TorchJobStatus
from controller.torchjob.conditions import set_condition
from controller.torchjob.plan import REASON_AWAITING_CAPACITY, REASON_QUEUED, Event, Plan

REASON_RESOLVED: Final = "Resolved"
MESSAGE_LIMIT: Final = 1024
"""Characters of the apiserver's message kept in the condition and the Event."""
_OVERRIDDEN: Final = frozenset({Phase.PENDING, Phase.QUEUED, Phase.PREEMPTED, Phase.CREATE_FAILED})
"""Phases of a gang not running yet: a refused create is then why it waits, and the phase says so. A running
(elastic) job keeps its phase and shows the refusal in the condition and Event only."""
_WAITING_EVENTS: Final = frozenset({REASON_QUEUED, REASON_AWAITING_CAPACITY})


@dataclass(frozen=True, slots=True)
class Refusal:
    """A create the apiserver answered with a 4xx (other than AlreadyExists or 429)."""

    kind: str
    name: str
    code: int
    message: str
    dry_run: bool = False
    """Refused in the server-side dry run of a new job's first worker."""

    @property
    def final(self) -> bool:
        """A dry run refused as invalid: retrying the same spec cannot help."""
        return self.dry_run and self.code in (400, 422)

    @property
    def reason(self) -> str:
        """The condition and Event reason, e.g. ``FailedCreatePod``."""
        return f"FailedCreate{self.kind}"

    def describe(self) -> str:
        """What the user reads: the object and the apiserver's own words."""
        what = "a dry run of creating" if self.dry_run else "creating"
        return f"{what} {self.kind} {self.name} was refused ({self.code}): {self.message}"[:MESSAGE_LIMIT]


def refused(old: TorchJobStatus, step: Plan, refusal: Refusal, now: datetime, generation: int | None) -> bool:
    """Show `refusal` on the step's status: condition, phase, and an Event if the refusal is new.

    Returns whether it is new (not the one the condition already quotes), for the caller's log line.
    """
    status = step.status
    message = refusal.describe()
    before = old.condition(ConditionType.CREATE_FAILED)
    new = before is None or before.status != ConditionStatus.TRUE or before.message != message
    status.conditions = set_condition(
        status.conditions or [],
        ConditionType.CREATE_FAILED,
        ConditionStatus.TRUE,
        refusal.reason,
        message,
        now,
        generation,
    )
    if status.phase in _OVERRIDDEN:
        if status.phase != Phase.CREATE_FAILED:
            # The plan's move to a waiting phase did not happen: no Event announces it.
            step.events[:] = [e for e in step.events if e.reason not in _WAITING_EVENTS]
        status.phase = Phase.CREATE_FAILED
    if new:
        step.events.append(Event("Warning", refusal.reason, message))
    return new


def created(step: Plan, now: datetime, generation: int | None) -> None:
    """No create of a pass was refused: a CreateFailed condition still True turns False (and a phase the plan
    left at CreateFailed, waiting for an older gang to go, reads Pending)."""
    status = step.status
    before = status.condition(ConditionType.CREATE_FAILED)
    if before is None or before.status != ConditionStatus.TRUE:
        return
    if status.phase == Phase.CREATE_FAILED:
        status.phase = Phase.PENDING
    status.conditions = set_condition(
        status.conditions or [],
        ConditionType.CREATE_FAILED,
        ConditionStatus.FALSE,
        REASON_RESOLVED,
        f"no create is refused any more; before: {before.message}"[:MESSAGE_LIMIT],
        now,
        generation,
    )
