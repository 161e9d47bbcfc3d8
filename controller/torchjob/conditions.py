"""A TorchJob's conditions, the Kubernetes way: one per type; lastTransitionTime moves only on a flip."""

from __future__ import annotations

from datetime import datetime

from api import Condition, ConditionStatus, ConditionType, Phase

# The condition that is True in each phase (Pending has none).
PHASE_CONDITION: dict[Phase, ConditionType] = {
    Phase.QUEUED: ConditionType.QUEUED,
    Phase.RUNNING: ConditionType.RUNNING,
    Phase.RESTARTING: ConditionType.RESTARTING,
    Phase.PREEMPTED: ConditionType.PREEMPTED,
    Phase.SUSPENDED: ConditionType.SUSPENDED,
    Phase.SUCCEEDED: ConditionType.SUCCEEDED,
    Phase.FAILED: ConditionType.FAILED,
}


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """`conditions` with `type_` upserted; its lastTransitionTime moves only when its status changes."""
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:32768],
        last_transition_time=since,
        observed_generation=generation,
    )
    return [new if c.type == type_ else c for c in conditions] if old is not None else [*conditions, new]


def for_phase(
    conditions: list[Condition],
    phase: Phase,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Conditions for `phase`: its own True, every other phase condition already present turned False."""
    own = PHASE_CONDITION.get(phase)
    out = list(conditions)
    for other in PHASE_CONDITION.values():
        if other == own:
            continue
        existing = next((c for c in out if c.type == other), None)
        if existing is not None and existing.status == ConditionStatus.TRUE:
            out = set_condition(out, other, ConditionStatus.FALSE, reason, message, now, generation)
    if own is not None:
        out = set_condition(out, own, ConditionStatus.TRUE, reason, message, now, generation)
    return out
