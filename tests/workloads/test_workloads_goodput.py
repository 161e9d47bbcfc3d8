"""The workload's own step goodput: the last run of each logged step is kept, earlier runs were redone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workloads.goodput import step_goodput


def test_steps_redone_after_a_resume_are_recomputed() -> None:
    # attempt 1 ran steps 1..4 (1 s each), checkpoint at 3; attempt 2 resumed at 3, ran 4..6 (2 s each)
    history = [(s, 1.0, s) for s in range(1, 5)] + [(s, 2.0, 10 + s) for s in range(4, 7)]
    result = step_goodput(history)
    assert result.recomputed_steps == 1
    assert result.recomputed_seconds == 1.0
    assert result.kept_seconds == 3 * 1.0 + 3 * 2.0
    assert result.fraction == pytest.approx(9 / 10)
    assert result.metrics()["goodput_recomputed_steps"] == 1.0


def test_nothing_ran_is_all_goodput() -> None:
    assert step_goodput([]).fraction == 1.0


@given(st.lists(st.tuples(st.integers(1, 50), st.floats(0, 10), st.integers(0, 10_000))))
def test_kept_plus_recomputed_is_every_step_second(history: list[tuple[int, float, int]]) -> None:
    result = step_goodput(history)
    assert result.kept_seconds + result.recomputed_seconds == pytest.approx(sum(s for _, s, _ in history))
    assert result.recomputed_steps == len(history) - len({step for step, _, _ in history})
    assert 0 <= result.fraction <= 1
