"""A job's goodput: how the time since its gang first ran was spent, productive or lost by cause.

Pure, derived from what the operator already writes: the phase (each status write closes an interval spent
in the phase written before it), the restart counters, ``lastCheckpoint`` and ``progress``. Computed on every
reconcile from the status last written and written only with the status batch, so an interval is always
charged to the phase the status showed during it.

- Running: running time. At a gang restart, the steps between the newest checkpoint and the stop are done
  again: ``recomputedSteps`` grows by them and their share of the ending attempt's running time (steps done
  in it at its measured pace) moves from productive to ``lost.recomputedSeconds``.
- Restarting: lost to the restart's cause (``preempted`` when its reason is Preempted, else ``restarting``).
- Preempted: lost, ``preempted``. Pending, Queued or CreateFailed after the first run: lost, ``queued``.
- Suspended: not held (the gang is gone by the user's choice); finished: frozen.
"""

from __future__ import annotations

from datetime import datetime

from api import ConditionType, Goodput, LostTime, Phase, TorchJobStatus
from controller.torchjob.plan import REASON_PREEMPTED, attempt_of


def _cause(status: TorchJobStatus) -> str | None:
    """The LostTime field charged for time spent in `status`'s phase; "running"; None: not held."""
    match status.phase:
        case Phase.RUNNING:
            return "running"
        case Phase.RESTARTING:
            restarting = status.condition(ConditionType.RESTARTING)
            preempted = restarting is not None and restarting.reason == REASON_PREEMPTED
            return "preempted_seconds" if preempted else "restarting_seconds"
        case Phase.PREEMPTED:
            return "preempted_seconds"
        case Phase.PENDING | Phase.QUEUED | Phase.CREATE_FAILED:
            return "queued_seconds"
        case _:
            return None


def goodput(old: TorchJobStatus, new: TorchJobStatus, now: datetime) -> Goodput | None:
    """The goodput to write with `new` at `now`, from `old` (the status last written); None before the gang
    first ran."""
    prev = old.goodput
    if prev is None:
        return Goodput(updated_time=now, percent=None) if new.phase == Phase.RUNNING else None
    if old.phase is not None and old.phase.finished:
        return prev
    out = prev.model_copy(deep=True)
    out.lost = prev.lost.model_copy()
    since = prev.updated_time or now
    elapsed = max((now - since).total_seconds(), 0.0)
    cause = _cause(old)
    if cause == "running":
        out.running_seconds += elapsed
    elif cause is not None:
        setattr(out.lost, cause, getattr(out.lost, cause) + elapsed)
    step = new.progress.step if new.progress is not None else 0
    if attempt_of(new) > attempt_of(old):  # a gang restart: what was done after the checkpoint is redone
        checkpoint = new.last_checkpoint.step if new.last_checkpoint is not None else 0
        redo = max(step - max(checkpoint, out.attempt_start_step), 0)
        done = step - out.attempt_start_step
        attempt_running = out.running_seconds - out.attempt_running_seconds
        out.recomputed_steps += max(step - checkpoint, 0)
        out.lost.recomputed_seconds += attempt_running * redo / done if done > 0 else 0.0
        out.attempt_running_seconds = out.running_seconds
        out.attempt_start_step = min(checkpoint, step) if checkpoint else 0
    out.productive_seconds = max(out.running_seconds - out.lost.recomputed_seconds, 0.0)
    lost = out.lost
    out.held_seconds = (
        out.running_seconds + lost.queued_seconds + lost.restarting_seconds + lost.preempted_seconds
    )
    out.percent = (
        round(100.0 * out.productive_seconds / out.held_seconds, 1) if out.held_seconds > 0 else None
    )
    executed = step + out.recomputed_steps
    if executed > 0 and out.running_seconds > 0:
        out.step_seconds = out.running_seconds / executed
    out.updated_time = now
    return out


def lost_seconds(value: Goodput) -> float:
    """Every lost second, all causes."""
    lost: LostTime = value.lost
    return lost.queued_seconds + lost.restarting_seconds + lost.preempted_seconds + lost.recomputed_seconds
