"""The fence file on plain files: claims, ownership checks, damaged files, racing claimers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from workloads import commit, fence
from workloads.fence import Claim, Fence


def test_the_first_claim_creates_the_root_and_takes_epoch_1(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    mine = fence.claim(root)
    assert mine.epoch == 1
    assert len(mine.owner) == 32
    assert json.loads((root / fence.FENCE).read_text()) == {"epoch": 1, "owner": mine.owner}
    assert fence.read(root) == mine


def test_every_claim_takes_the_next_epoch_with_a_fresh_owner(tmp_path: Path) -> None:
    claims = [fence.claim(tmp_path) for _ in range(3)]
    assert [c.epoch for c in claims] == [1, 2, 3]
    assert len({c.owner for c in claims}) == 3
    assert fence.read(tmp_path) == claims[-1]


def test_a_newer_claim_fences_the_older_group(tmp_path: Path) -> None:
    old = Fence.take(tmp_path)
    assert old.holds()
    new = Fence.take(tmp_path)
    assert new.mine.epoch == old.mine.epoch + 1
    assert not old.holds()
    assert old.seen == new.mine  # what the stale group reports having seen
    assert new.holds()


def test_a_lost_claim_stays_lost(tmp_path: Path) -> None:
    old = Fence.take(tmp_path)
    fence.claim(tmp_path)
    assert not old.holds()
    commit.atomic_write(tmp_path / fence.FENCE, old.mine.to_json())
    assert not old.holds()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[1, 2]",
        '{"epoch": "3", "owner": "x"}',
        '{"epoch": true, "owner": "x"}',
        '{"epoch": -1, "owner": "x"}',
        '{"epoch": 3, "owner": ""}',
        '{"epoch": 3}',
    ],
)
def test_a_damaged_fence_is_nobodys_and_a_new_claim_repairs_it(tmp_path: Path, text: str) -> None:
    held = Fence.take(tmp_path)
    (tmp_path / fence.FENCE).write_text(text)
    assert fence.read(tmp_path) is None
    assert not held.holds()
    assert held.seen is None
    again = Fence.take(tmp_path)
    assert again.mine.epoch == 1
    assert again.holds()
    assert fence.read(tmp_path) == again.mine


def test_a_deleted_fence_is_nobodys(tmp_path: Path) -> None:
    held = Fence.take(tmp_path)
    (tmp_path / fence.FENCE).unlink()
    assert not held.holds()


def test_claims_racing_each_other_leave_exactly_one_owner_and_no_temp_files(tmp_path: Path) -> None:
    start = threading.Barrier(8)
    fences: list[Fence] = []
    errors: list[BaseException] = []

    def take() -> None:
        start.wait()
        try:
            fences.append(Fence.take(tmp_path))
        except BaseException as err:  # a shared temp file makes one writer's rename fail
            errors.append(err)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(f.holds() for f in fences) == 1
    assert fence.read(tmp_path) in [f.mine for f in fences]
    assert [p.name for p in tmp_path.iterdir()] == [fence.FENCE]


def test_the_claim_round_trips_as_json() -> None:
    claim = Claim(7, "abc")
    assert json.loads(claim.to_json()) == {"epoch": 7, "owner": "abc"}
