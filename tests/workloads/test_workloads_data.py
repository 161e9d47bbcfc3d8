"""The global data cursor: world-size independent order, once-per-epoch coverage, deterministic data."""

from __future__ import annotations

import pytest

from tests.required import import_or_missing

torch = import_or_missing("torch", "workloads")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workloads.data import DataCursor, SyntheticRegression  # noqa: E402

pytestmark = pytest.mark.torch


@settings(max_examples=40, deadline=None)
@given(
    per_rank=st.integers(1, 4),
    world=st.sampled_from([1, 2, 3, 4, 6]),
    steps=st.integers(0, 40),
    seed=st.integers(0, 5),
)
def test_ranks_rebuild_the_global_batch_at_any_world_size(
    per_rank: int, world: int, steps: int, seed: int
) -> None:
    batch = per_rank * 12  # divisible by every world size drawn
    cursor = DataCursor.at_step(steps, 100, batch, seed)
    shares = [cursor.local_ids(r, world) for r in range(world)]
    merged = [shares[r][i] for i in range(batch // world) for r in range(world)]
    assert merged == cursor.global_batch_ids()


@settings(max_examples=30, deadline=None)
@given(size=st.integers(8, 80), batch=st.integers(1, 8), steps=st.integers(0, 30))
def test_advance_matches_at_step_and_each_epoch_sees_every_sample_once(
    size: int, batch: int, steps: int
) -> None:
    cursor = DataCursor(size, batch, seed=1)
    seen: dict[int, list[int]] = {}
    for _ in range(steps):
        seen.setdefault(cursor.epoch, []).extend(cursor.global_batch_ids())
        cursor = cursor.advance()
    assert cursor == DataCursor.at_step(steps, size, batch, 1)
    for epoch, ids in seen.items():
        assert len(ids) == len(set(ids))
        if epoch < cursor.epoch:  # a finished epoch covers all but the tail that does not fill a batch
            assert len(ids) == (size // batch) * batch


def test_indivisible_batch_fails_fast() -> None:
    with pytest.raises(ValueError, match="divisible"):
        DataCursor(64, 8, 0).local_ids(0, 3)


def test_dataset_is_a_pure_function_of_the_seed() -> None:
    a, b, c = SyntheticRegression(32, 7), SyntheticRegression(32, 7), SyntheticRegression(32, 8)
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    x, y = a.batch([3, 1])
    assert torch.equal(x[0], a.x[3])
    assert torch.equal(y[1], a.y[1])
