"""Rank 0's commit of a finished save, with and without its group owning the checkpoint root."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from api import contract
from tests.required import import_or_missing
from tests.workloads.commits import complete
from workloads import commit, fence
from workloads.fence import Fence

import_or_missing("torch", "workloads")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from workloads.checkpoint import AppState, Checkpointer, PendingSave  # noqa: E402
from workloads.data import DataCursor  # noqa: E402
from workloads.faults import FaultInjector  # noqa: E402


def finished_async_save(root: Path, step: int, holder: Fence) -> Checkpointer:
    """Rank 0 of a 1-rank group whose async save of `step` is written (DCP done, no manifest yet)."""
    ckpt = Checkpointer(root, rank=0, world_size=1, keep=3, faults=FaultInjector(None, 0))
    ckpt.fence = holder
    (complete(root, step) / commit.MANIFEST).unlink()
    done: Future[object] = Future()
    done.set_result(None)
    ckpt.pending = PendingSave(step, DataCursor(48, 8, 0), done, 0.0, 0.0)
    return ckpt


def test_the_owner_commits_its_async_save(tmp_path: Path) -> None:
    ckpt = finished_async_save(tmp_path, 4, Fence.take(tmp_path))
    result = ckpt.wait()
    assert result is not None
    assert (result.step, result.asynchronous) == (4, True)
    assert ckpt.committed_step == 4
    assert commit.committed_step_dir(tmp_path) == tmp_path / contract.step_dir_name(4)


def test_a_fenced_rank_0_commits_nothing(tmp_path: Path) -> None:
    complete(tmp_path, 2)
    commit.publish_latest(tmp_path, 2)
    stale = Fence.take(tmp_path)
    ckpt = finished_async_save(tmp_path, 4, stale)
    fence.claim(tmp_path)  # a newer group started while the save was in flight
    assert ckpt.wait() is None
    assert ckpt.committed_step is None
    assert ckpt.pending is None
    assert commit.committed_step_dir(tmp_path) == tmp_path / contract.step_dir_name(2)
    # no manifest either, so a resume hint naming the dir cannot pick it
    assert not commit.is_complete(tmp_path / contract.step_dir_name(4))
    assert commit.resume_dir(tmp_path, tmp_path / contract.step_dir_name(4)) == tmp_path / "step-000000000002"


def test_a_claim_while_the_manifest_is_written_withdraws_it(tmp_path: Path) -> None:
    class ClaimedAtLatest(FaultInjector):
        def hit(self, phase: str, step: int) -> None:
            if phase == "before_latest":
                fence.claim(tmp_path)

    stale = Fence.take(tmp_path)
    ckpt = finished_async_save(tmp_path, 6, stale)
    ckpt.faults = ClaimedAtLatest(None, 0)
    assert ckpt.wait() is None
    assert not (tmp_path / commit.LATEST).exists()
    assert not commit.is_complete(tmp_path / contract.step_dir_name(6))


def test_abandon_waits_for_the_save_and_commits_nothing(tmp_path: Path) -> None:
    ckpt = finished_async_save(tmp_path, 4, Fence.take(tmp_path))
    ckpt.abandon()
    assert ckpt.pending is None
    assert ckpt.committed_step is None
    assert not (tmp_path / commit.LATEST).exists()


@pytest.fixture
def one_rank_group(tmp_path: Path) -> Iterator[dist.ProcessGroup]:
    """A 1-rank gloo process group in this process, so a real DCP save runs."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    group = dist.new_group(backend="gloo")
    assert isinstance(group, dist.ProcessGroup)
    yield group
    dist.destroy_process_group()


class ClaimedAt(FaultInjector):
    """A newer group claims `root` when this rank's save reaches `phase`."""

    def __init__(self, root: Path, phase: str) -> None:
        super().__init__(None, 0)
        self.root, self.phase = root, phase

    def hit(self, phase: str, step: int) -> None:
        if phase == self.phase:
            fence.claim(self.root)


def saver(root: Path, group: dist.ProcessGroup, faults: FaultInjector) -> tuple[Checkpointer, AppState]:
    ckpt = Checkpointer(root / "ckpt", 0, 1, 3, faults, group)
    ckpt.fence = Fence.take(ckpt.root)
    model = torch.nn.Linear(4, 2)
    return ckpt, AppState(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_a_save_by_a_fenced_group_writes_no_step_dir(
    tmp_path: Path, one_rank_group: dist.ProcessGroup
) -> None:
    ckpt, state = saver(tmp_path, one_rank_group, FaultInjector(None, 0))
    fence.claim(ckpt.root)
    assert ckpt.save(2, DataCursor(48, 8, 0), state, asynchronous=False) is None
    assert not (ckpt.root / contract.step_dir_name(2)).exists()
    assert ckpt.committed_step is None


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_claim_during_the_write_stops_the_data_files(
    tmp_path: Path, one_rank_group: dist.ProcessGroup, asynchronous: bool
) -> None:
    ckpt, state = saver(tmp_path, one_rank_group, ClaimedAt(tmp_path / "ckpt", "before_write"))
    cursor = DataCursor(48, 8, 0)
    result = ckpt.save(2, cursor, state, asynchronous=asynchronous)
    if asynchronous:
        assert result is None
        result = ckpt.wait()
    assert result is None
    assert ckpt.committed_step is None
    assert not (ckpt.root / commit.LATEST).exists()
    assert list((ckpt.root / contract.step_dir_name(2)).iterdir()) == []


def test_a_claim_before_the_metadata_leaves_the_save_incomplete(
    tmp_path: Path, one_rank_group: dist.ProcessGroup
) -> None:
    ckpt, state = saver(tmp_path, one_rank_group, ClaimedAt(tmp_path / "ckpt", "mid_write"))
    assert ckpt.save(2, DataCursor(48, 8, 0), state, asynchronous=False) is None
    assert not (ckpt.root / commit.LATEST).exists()
    assert not (ckpt.root / contract.step_dir_name(2) / commit.DCP_METADATA).exists()


def test_an_owned_save_is_committed(tmp_path: Path, one_rank_group: dist.ProcessGroup) -> None:
    ckpt, state = saver(tmp_path, one_rank_group, FaultInjector(None, 0))
    result = ckpt.save(2, DataCursor(48, 8, 0), state, asynchronous=False)
    assert result is not None
    assert ckpt.committed_step == 2
    assert commit.committed_step_dir(ckpt.root) == ckpt.root / contract.step_dir_name(2)
