"""Distributed checkpoints with torch.distributed.checkpoint, committed by :mod:`workloads.commit`.

With a :class:`~workloads.fence.Fence`, rank 0 commits only while its group owns the checkpoint root, and
every rank checks it again before it writes its files and rank 0 before DCP's ``.metadata``: a superseded
group's save still in flight must not write into a step directory the newer group has prepared.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import FileSystemWriter
from torch.distributed.checkpoint.metadata import Metadata
from torch.distributed.checkpoint.planner import SavePlan, SavePlanner
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load  # pyright: ignore[reportUnknownVariableType]
from torch.distributed.checkpoint.state_dict_saver import (
    async_save,  # pyright: ignore[reportUnknownVariableType] (torch's PathLike[Unknown])
    save,  # pyright: ignore[reportUnknownVariableType]
)
from torch.distributed.checkpoint.stateful import Stateful
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future as TorchFuture

from api import contract
from workloads import commit
from workloads.data import DataCursor
from workloads.faults import FaultInjector
from workloads.fence import Fence

log = logging.getLogger(__name__)

APP_KEY = "app"


class AppState(Stateful):
    """Model + optimizer through get/set_state_dict, so any world size (or DDP/FSDP2) can load it."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model = model
        self.optimizer = optimizer

    def state_dict(self) -> dict[str, Any]:
        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optim": optim_sd}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_state_dict(
            self.model,
            self.optimizer,
            model_state_dict=state_dict["model"],
            optim_state_dict=state_dict["optim"],
        )


class Superseded(RuntimeError):
    """A newer group owns the checkpoint root: this save must write nothing more."""


class _Writer(FileSystemWriter):
    """FileSystemWriter with the ``mid_write`` fault hook (data written, ``.metadata`` not yet) and the fence
    checked before this rank's files and before ``.metadata``."""

    def __init__(self, path: Path, faults: FaultInjector, step: int, fence: Fence | None) -> None:
        super().__init__(path)  # pyright: ignore[reportUnknownMemberType] (torch's PathLike[Unknown])
        self._faults = faults
        self._step = step
        self._fence = fence

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> TorchFuture[Any]:
        self._check()
        fut = super().write_data(plan, planner)
        fut.wait()
        self._faults.hit("mid_write", self._step)
        return fut

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        self._check()
        super().finish(metadata, results)

    def _check(self) -> None:
        if self._fence is not None and not self._fence.holds():
            raise Superseded(f"step {self._step}: the checkpoint root belongs to a newer group")


@dataclass
class PendingSave:
    """An async save in flight: committed by rank 0 once its future is done."""

    step: int
    cursor: DataCursor
    future: Future[Any]
    started: float
    blocking_s: float


@dataclass(frozen=True)
class SaveResult:
    """Timings of a finished (committed) save."""

    step: int
    save_s: float
    blocking_s: float
    asynchronous: bool


class Checkpointer:
    """Saves into fresh ``step-N`` dirs (sync or async, at most one in flight) and loads the committed one."""

    def __init__(
        self,
        root: Path,
        rank: int,
        world_size: int,
        keep: int,
        faults: FaultInjector,
        process_group: dist.ProcessGroup | None = None,
    ) -> None:
        self.root = root
        self.rank = rank
        self.world_size = world_size
        self.keep = keep
        self.faults = faults
        self.pg = process_group
        self.fence: Fence | None = None
        """The group's claim on ``root`` once rank 0 has taken it; None: write and commit unconditionally."""
        self.pending: PendingSave | None = None
        self.committed_step: int | None = None
        self.committed_time: float | None = None

    def load(self, state: AppState, hint: Path | None = None) -> commit.Manifest | None:
        """Load the committed checkpoint (or the newer ``hint``, see :func:`commit.resume_dir`) into
        ``state``; rank 0 picks it for everyone. None if there is none."""
        choice: list[str | None] = [None]
        if self.rank == 0:
            found = commit.resume_dir(self.root, hint)
            choice[0] = None if found is None else found.name
        dist.broadcast_object_list(choice, src=0)
        if choice[0] is None:
            return None
        directory = self.root / choice[0]
        manifest = commit.Manifest.read(directory)
        load({APP_KEY: state}, checkpoint_id=directory, process_group=self.pg)
        self.committed_step = manifest.step
        return manifest

    def save(self, step: int, cursor: DataCursor, state: AppState, asynchronous: bool) -> SaveResult | None:
        """Checkpoint ``step``. Sync saves are committed before returning; async ones by :meth:`poll`."""
        self.wait()
        started = time.perf_counter()
        go = torch.ones(1, dtype=torch.int32)
        if self.rank == 0:
            if self._owns(step):
                commit.prepare_fresh(self.root, step)
            else:  # a superseded group writes nothing, not even into a step dir of the newer group
                go.zero_()
        dist.broadcast(go, src=0, group=self.pg)  # nobody writes into the directory before it is fresh
        if not go.item():
            return None
        self.faults.hit("before_write", step)
        writer = _Writer(self.root / contract.step_dir_name(step), self.faults, step, self.fence)
        if asynchronous:
            fut: object = async_save(  # pyright: ignore[reportUnknownVariableType]
                {APP_KEY: state}, storage_writer=writer, process_group=self.pg
            )
            if not isinstance(fut, Future):
                raise TypeError(f"unexpected async_save result {type(fut).__name__}")
            fut = cast("Future[object]", fut)
            self.pending = PendingSave(step, cursor, fut, started, time.perf_counter() - started)
            return None
        try:
            save({APP_KEY: state}, storage_writer=writer, process_group=self.pg)
        except (Exception, CheckpointException):  # DCP's is a BaseException
            if not self._owns(step):  # failed because a newer group took the root: nothing is kept
                return None
            raise
        save_s = time.perf_counter() - started
        if not self._commit(step, cursor, save_s):
            return None
        return SaveResult(step, save_s, save_s, False)

    def poll(self) -> SaveResult | None:
        """Commit the in-flight async save if it has finished (never blocks)."""
        if self.pending is None or not self.pending.future.done():
            return None
        return self._finish_pending()

    def wait(self) -> SaveResult | None:
        """Block until the in-flight async save is written and committed."""
        if self.pending is None:
            return None
        return self._finish_pending()

    def abandon(self) -> None:
        """Let the in-flight async save finish writing (it uses the checkpoint group) but never commit it."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        try:
            pending.future.result()
        except (Exception, CheckpointException) as err:  # nothing of it is kept either way
            log.warning("abandoned save of step %d failed: %s", pending.step, err)

    def _finish_pending(self) -> SaveResult | None:
        pending = self.pending
        assert pending is not None
        self.pending = None
        try:
            pending.future.result()
        except (Exception, CheckpointException):  # DCP's is a BaseException
            if not self._owns(pending.step):
                return None
            raise
        save_s = time.perf_counter() - pending.started
        if not self._commit(pending.step, pending.cursor, save_s):
            return None
        return SaveResult(pending.step, save_s, pending.blocking_s, True)

    def _owns(self, step: int) -> bool:
        """Whether this group still owns the root; when not, the save of `step` is dropped (logged)."""
        if self.fence is None or self.fence.holds():
            return True
        log.warning("step %d not kept: the checkpoint root belongs to a newer group", step)
        return False

    def _commit(self, step: int, cursor: DataCursor, save_s: float) -> bool:
        """Rank 0 commits; False when its group no longer owns the root (nothing committed)."""
        # DCP returns on rank 0 only after every rank's data and then .metadata are written.
        if self.rank != 0:
            self.committed_step = step
            self.committed_time = time.time()
            return True
        if not self._owns(step):
            return False
        self.faults.hit("before_manifest", step)
        manifest = commit.Manifest(
            step=step,
            epoch=cursor.epoch,
            consumed=cursor.consumed,
            global_batch=cursor.global_batch,
            dataset_size=cursor.dataset_size,
            world_size=self.world_size,
            torch_version=torch.__version__,
            save_s=round(save_s, 4),
        )
        directory = commit.commit(self.root, manifest)
        self.faults.hit("before_latest", step)
        if not self._owns(step):  # claimed while the manifest was written: leave no complete-looking dir
            (directory / commit.MANIFEST).unlink(missing_ok=True)
            return False
        commit.publish_latest(self.root, step)
        self.committed_step = step
        self.committed_time = time.time()
        for removed in commit.prune(self.root, self.keep):
            log.info("pruned checkpoint %s", removed)
        return True
