"""Distributed checkpoints with torch.distributed.checkpoint, committed by :mod:`workloads.commit`."""

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
from torch.distributed.checkpoint.filesystem import FileSystemWriter
from torch.distributed.checkpoint.planner import SavePlan, SavePlanner
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load  # pyright: ignore[reportUnknownVariableType]
from torch.distributed.checkpoint.state_dict_saver import (
    async_save,  # pyright: ignore[reportUnknownVariableType] (torch's PathLike[Unknown])
    save,  # pyright: ignore[reportUnknownVariableType]
)
from torch.distributed.checkpoint.stateful import Stateful
from torch.futures import Future as TorchFuture

from api import contract
from workloads import commit
from workloads.data import DataCursor
from workloads.faults import FaultInjector

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


class _Writer(FileSystemWriter):
    """FileSystemWriter with the ``mid_write`` fault hook (data written, ``.metadata`` not yet)."""

    def __init__(self, path: Path, faults: FaultInjector, step: int) -> None:
        super().__init__(path)  # pyright: ignore[reportUnknownMemberType] (torch's PathLike[Unknown])
        self._faults = faults
        self._step = step

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> TorchFuture[Any]:
        fut = super().write_data(plan, planner)
        fut.wait()
        self._faults.hit("mid_write", self._step)
        return fut


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
        if self.rank == 0:
            commit.prepare_fresh(self.root, step)
        dist.barrier(group=self.pg)  # nobody writes into the directory before it is fresh
        self.faults.hit("before_write", step)
        writer = _Writer(self.root / contract.step_dir_name(step), self.faults, step)
        if asynchronous:
            fut: object = async_save(  # pyright: ignore[reportUnknownVariableType]
                {APP_KEY: state}, storage_writer=writer, process_group=self.pg
            )
            if not isinstance(fut, Future):
                raise TypeError(f"unexpected async_save result {type(fut).__name__}")
            fut = cast("Future[object]", fut)
            self.pending = PendingSave(step, cursor, fut, started, time.perf_counter() - started)
            return None
        save({APP_KEY: state}, storage_writer=writer, process_group=self.pg)
        save_s = time.perf_counter() - started
        self._commit(step, cursor, save_s)
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

    def _finish_pending(self) -> SaveResult:
        pending = self.pending
        assert pending is not None
        self.pending = None
        pending.future.result()
        save_s = time.perf_counter() - pending.started
        self._commit(pending.step, pending.cursor, save_s)
        return SaveResult(pending.step, save_s, pending.blocking_s, True)

    def _commit(self, step: int, cursor: DataCursor, save_s: float) -> None:
        # DCP returns on rank 0 only after every rank's data and then .metadata are written.
        self.committed_step = step
        self.committed_time = time.time()
        if self.rank != 0:
            return
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
        commit.commit(self.root, manifest)
        self.faults.hit("before_latest", step)
        commit.publish_latest(self.root, step)
        for removed in commit.prune(self.root, self.keep):
            log.info("pruned checkpoint %s", removed)
