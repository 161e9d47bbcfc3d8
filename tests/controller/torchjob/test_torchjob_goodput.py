"""Goodput arithmetic: productive and lost time derived from the sequence of written statuses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import Condition, ConditionStatus, Goodput, Phase, TorchJobStatus
from api.status import CheckpointStatus, Progress
from controller.torchjob.goodput import goodput, lost_seconds
from controller.torchjob.plan import REASON_FAILED_RETRY, REASON_PREEMPTED

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HELD = frozenset(
    {Phase.RUNNING, Phase.RESTARTING, Phase.PREEMPTED, Phase.PENDING, Phase.QUEUED, Phase.CREATE_FAILED}
)


def status(
    phase: Phase,
    *,
    step: int | None = None,
    checkpoint: int | None = None,
    failures: int = 0,
    preemptions: int = 0,
    restart_reason: str | None = None,
) -> TorchJobStatus:
    conditions = None
    if restart_reason is not None:
        conditions = [
            Condition(
                type="Restarting", status=ConditionStatus.TRUE, last_transition_time=T0, reason=restart_reason
            )
        ]
    return TorchJobStatus(
        phase=phase,
        conditions=conditions,
        failure_restarts=failures,
        preemption_restarts=preemptions,
        progress=Progress(step=step) if step is not None else None,
        last_checkpoint=CheckpointStatus(step=checkpoint) if checkpoint is not None else None,
    )


def written(old: TorchJobStatus, new: TorchJobStatus, now: datetime) -> TorchJobStatus:
    """`new` as written at `now`, with its goodput."""
    out = new.model_copy(deep=True)
    out.goodput = goodput(old, new, now)
    return out


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def test_nothing_is_held_before_the_gang_first_runs() -> None:
    assert goodput(TorchJobStatus(), status(Phase.QUEUED), T0) is None
    first = goodput(status(Phase.QUEUED), status(Phase.RUNNING), T0)
    assert first == Goodput(updated_time=T0)


def test_an_undisrupted_run_is_all_productive() -> None:
    running = written(status(Phase.QUEUED), status(Phase.RUNNING, step=0), T0)
    later = written(running, status(Phase.RUNNING, step=500), T0 + timedelta(seconds=100))
    done = written(later, status(Phase.SUCCEEDED, step=1000), T0 + timedelta(seconds=200))
    result = done.goodput
    assert result is not None
    assert result.held_seconds == result.productive_seconds == result.running_seconds == 200
    assert result.percent == 100.0
    assert result.step_seconds == pytest.approx(0.2)
    # finished: frozen, whatever time passes
    assert goodput(done, done, T0 + timedelta(days=1)) == result


def test_a_preemption_charges_preempted_time_and_the_steps_after_the_checkpoint() -> None:
    running = written(status(Phase.QUEUED), status(Phase.RUNNING, step=0), T0)
    # 100 s running, stopped at step 127 with the newest checkpoint at 120: 7 steps are redone
    restart = status(
        Phase.RESTARTING, step=127, checkpoint=120, preemptions=1, restart_reason=REASON_PREEMPTED
    )
    restarting = written(running, restart, T0 + timedelta(seconds=100))
    preempted = written(
        restarting,
        status(Phase.PREEMPTED, step=127, checkpoint=120, preemptions=1, restart_reason=REASON_PREEMPTED),
        T0 + timedelta(seconds=110),
    )
    back = written(
        preempted, status(Phase.RUNNING, step=127, checkpoint=120, preemptions=1), T0 + timedelta(seconds=170)
    )
    now = written(
        back, status(Phase.RUNNING, step=150, checkpoint=140, preemptions=1), T0 + timedelta(seconds=200)
    )
    result = now.goodput
    assert result is not None
    assert result.recomputed_steps == 7
    assert result.lost.preempted_seconds == 70  # 10 s Restarting (preempted) + 60 s Preempted
    assert result.lost.restarting_seconds == 0
    assert result.lost.recomputed_seconds == pytest.approx(100 * 7 / 127)
    assert result.running_seconds == 130
    assert result.held_seconds == 200
    assert result.productive_seconds == pytest.approx(130 - 100 * 7 / 127)
    assert result.attempt_start_step == 120


def test_a_failure_restart_is_charged_to_restarting_and_waiting_after_it_to_queued() -> None:
    running = written(status(Phase.QUEUED), status(Phase.RUNNING, step=0), T0)
    restarting = written(
        running,
        status(Phase.RESTARTING, step=50, failures=1, restart_reason=REASON_FAILED_RETRY),
        T0 + timedelta(seconds=50),
    )
    queued = written(restarting, status(Phase.QUEUED, step=50, failures=1), T0 + timedelta(seconds=55))
    back = written(queued, status(Phase.RUNNING, step=50, failures=1), T0 + timedelta(seconds=65))
    result = back.goodput
    assert result is not None
    assert result.lost.restarting_seconds == 5
    assert result.lost.queued_seconds == 10
    assert result.recomputed_steps == 50  # no checkpoint: everything is done again
    assert result.lost.recomputed_seconds == 50
    assert result.productive_seconds == 0
    assert result.held_seconds == 65


def test_suspended_time_is_not_held() -> None:
    running = written(status(Phase.QUEUED), status(Phase.RUNNING), T0)
    suspended = written(running, status(Phase.SUSPENDED), T0 + timedelta(seconds=10))
    resumed = written(suspended, status(Phase.PENDING), T0 + timedelta(seconds=1000))
    assert resumed.goodput is not None
    assert resumed.goodput.held_seconds == 10


@dataclass(frozen=True)
class Move:
    """One status write: `seconds` after the previous one, into `phase`; `restart` bumps a counter."""

    seconds: int
    phase: Phase
    restart: bool
    steps: int
    checkpoint_back: int


moves = st.lists(
    st.builds(
        Move,
        seconds=st.integers(0, 10_000),
        phase=st.sampled_from([p for p in Phase if not p.finished]),
        restart=st.booleans(),
        steps=st.integers(0, 1000),
        checkpoint_back=st.integers(0, 1000),
    ),
    max_size=30,
)


@given(moves)
def test_productive_plus_lost_is_held_never_negative_and_monotone(sequence: list[Move]) -> None:
    old = written(status(Phase.QUEUED), status(Phase.RUNNING), T0)
    now, step, checkpoint, restarts = T0, 0, 0, 0
    held_expected, redone_expected = 0.0, 0
    for move in sequence:
        held_expected += move.seconds if old.phase in HELD else 0
        now += timedelta(seconds=move.seconds)
        step += move.steps
        checkpoint = max(checkpoint, step - move.checkpoint_back)
        if move.restart:
            restarts += 1
            redone_expected += step - checkpoint
        new = status(move.phase, step=step, checkpoint=checkpoint, failures=restarts)
        new = written(old, new, now)
        before, after = old.goodput, new.goodput
        assert before is not None
        assert after is not None
        # lost + productive = held; nothing negative
        assert close(after.productive_seconds + lost_seconds(after), after.held_seconds)
        assert after.productive_seconds >= 0
        assert lost_seconds(after) >= 0
        assert all(v >= 0 for v in after.lost.model_dump().values())
        # monotone: held, running and every lost cause only grow; productive too, but at a restart
        assert after.held_seconds >= before.held_seconds
        assert after.running_seconds >= before.running_seconds
        for cause, value in after.lost.model_dump().items():
            assert value >= getattr(before.lost, cause)
        if not move.restart:
            assert after.productive_seconds >= before.productive_seconds - 1e-6
        assert after.recomputed_steps == redone_expected
        assert close(after.held_seconds, held_expected)
        if after.percent is not None:
            assert 0 <= after.percent <= 100
        if move.restart:
            # after a resume, step continues from the checkpoint
            step = checkpoint
        old = new
