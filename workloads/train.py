"""Entry point: ``torchrun ... -m workloads.train`` (settings in env, see :mod:`workloads`).

Each step: every rank trains on its share of the global batch, then one all-reduce carries the global loss,
"has any rank been signalled" and "has this group been fenced". A signal therefore stops every rank at the
same step, which is saved synchronously and committed before the workers exit with ``EXIT_DRAINED``: no step
is lost. A fenced group (a newer one claimed the checkpoint root, :mod:`workloads.fence`) stops at the step it
learns it, commits nothing and exits with ``EXIT_FENCED``, so torchrun's agent re-joins the rendezvous.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel

from api import contract
from workloads.checkpoint import AppState, Checkpointer, SaveResult
from workloads.config import DistEnv, TrainConfig, args_to_env
from workloads.data import DataCursor, SyntheticRegression
from workloads.faults import FaultInjector, FaultPlan
from workloads.fence import Claim, Fence
from workloads.model import build_model
from workloads.preemption import StopFlag
from workloads.progress import LivePoster, ProgressReporter, write_termination_message
from workloads.tracking import MlflowTracker, Tracker

log = logging.getLogger("workloads.train")


class Drained(Exception):
    """All ranks agreed to stop on a signal after committing the current step."""


class Fenced(Exception):
    """All ranks agreed to stop without committing: a newer group owns the checkpoint root."""


def _set_timeout(seconds: float, groups: list[dist.ProcessGroup | None]) -> None:
    dist.barrier()  # every rank is past its slow first step before the short timeout applies
    for group in groups:
        dist.distributed_c10d.set_timeout(timedelta(seconds=seconds), group)


def init_distributed(cfg: TrainConfig, env: DistEnv) -> torch.device:
    """gloo on CPU; ``cpu:gloo,cuda:nccl`` when CUDA is present (gloo keeps CPU collectives working)."""
    timeout = timedelta(seconds=cfg.init_timeout_s)
    if torch.cuda.is_available():
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("cpu:gloo,cuda:nccl", timeout=timeout, device_id=device)
        return device
    dist.init_process_group("gloo", timeout=timeout)
    return torch.device("cpu")


class Trainer:
    """One training attempt of one rank: resume, train, checkpoint, drain."""

    def __init__(self, cfg: TrainConfig, env: DistEnv, device: torch.device) -> None:
        self.cfg = cfg
        self.env = env
        self.device = device
        self.stop = StopFlag().install()
        self.data = SyntheticRegression(cfg.dataset_size, cfg.seed)
        self.cursor = DataCursor(cfg.dataset_size, cfg.global_batch, cfg.seed)
        model = build_model(cfg.model_width, cfg.model_depth, cfg.seed).to(device)
        ids = [env.local_rank] if device.type == "cuda" else None
        self.model: nn.Module = DistributedDataParallel(model, device_ids=ids)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=0.9)
        self.state = AppState(self.model, self.optimizer)
        self.faults = FaultInjector(FaultPlan.for_attempt(cfg.fault, env.restart_count), env.rank)
        # checkpoint collectives (also async ones from a background thread) get their own gloo group
        ckpt_pg = dist.new_group(backend="gloo")
        if not isinstance(ckpt_pg, dist.ProcessGroup):
            raise RuntimeError("this rank is not in the checkpoint process group")
        self.ckpt_pg: dist.ProcessGroup = ckpt_pg
        self.ckpt: Checkpointer | None = None
        self.fence: Fence | None = None
        if cfg.checkpoint_dir is not None:
            self.ckpt = Checkpointer(
                cfg.checkpoint_dir, env.rank, env.world_size, cfg.checkpoint_keep, self.faults, self.ckpt_pg
            )
        self.progress = ProgressReporter(env.rank == 0, cfg.progress_file)
        self.live = LivePoster.from_env(os.environ, rank=env.rank, checkpoint_dir=cfg.checkpoint_dir)
        self.tracker: Tracker = Tracker()
        self.step = 0
        self.start_step = 0
        self.last_save_s = 0.0
        self.last_loss: float | None = None

    @property
    def committed_step(self) -> int | None:
        return None if self.ckpt is None else self.ckpt.committed_step

    def claim(self) -> None:
        """Rank 0 takes the checkpoint root for this group, before anything is loaded from it; every rank
        learns the claim (its checkpoint writes check it)."""
        if self.ckpt is None:
            return
        taken = Fence.take(self.ckpt.root) if self.env.rank == 0 else None
        box: list[Claim | None] = [taken.mine if taken else None]
        dist.broadcast_object_list(box, src=0)
        mine = box[0]
        assert mine is not None
        self.fence = self.ckpt.fence = taken or Fence(self.ckpt.root, mine)
        self.progress.emit("claim", epoch=mine.epoch, owner=mine.owner)

    def fenced_here(self) -> bool:
        """Whether this rank knows its group lost the checkpoint root: rank 0 reads the file every step, the
        others only learn it when a checkpoint write of theirs finds it."""
        if self.fence is None:
            return False
        return self.fence.lost or (self.env.rank == 0 and not self.fence.holds())

    def resume(self) -> None:
        """Continue from the committed checkpoint, whatever world size wrote it."""
        if self.ckpt is None:
            return
        started = time.perf_counter()
        manifest = self.ckpt.load(self.state, self.cfg.resume_from)
        if manifest is None:
            return
        if (manifest.global_batch, manifest.dataset_size) != (self.cfg.global_batch, self.cfg.dataset_size):
            raise ValueError("checkpoint was written with another global batch or dataset size")
        self.step = manifest.step
        self.cursor = DataCursor(
            manifest.dataset_size, manifest.global_batch, self.cfg.seed, manifest.epoch, manifest.consumed
        )
        self.progress.emit(
            "resume",
            from_step=manifest.step,
            old_world_size=manifest.world_size,
            new_world_size=self.env.world_size,
            restart_count=self.env.restart_count,
            load_s=round(time.perf_counter() - started, 4),
        )

    def train_step(self) -> tuple[float, bool, bool]:
        """One optimizer step; returns the global mean loss, whether any rank was signalled and whether the
        group was fenced."""
        ids = self.cursor.local_ids(self.env.rank, self.env.world_size)
        self._log_samples(ids)
        x, y = (t.to(self.device) for t in self.data.batch(ids))
        loss = nn.functional.mse_loss(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # pyright: ignore[reportUnknownMemberType] (untyped in torch)
        self.optimizer.step()  # pyright: ignore[reportUnknownMemberType]
        share = len(ids) / self.cfg.global_batch
        flags = [float(self.stop.requested), float(self.fenced_here())]
        agreed = torch.tensor([loss.item() * share, *flags], dtype=torch.float64)
        dist.all_reduce(agreed)  # not ckpt_pg: an async save may be using that one from its thread
        return float(agreed[0]), bool(agreed[1] > 0), bool(agreed[2] > 0)

    def run(self) -> None:
        """Train to ``total_steps``; raises :class:`Drained` after a signal-triggered checkpoint and
        :class:`Fenced` once a newer group owns the checkpoint root."""
        cfg = self.cfg
        while self.step < cfg.total_steps:
            started = time.perf_counter()
            loss, stop, fenced = self.train_step()
            if fenced:  # before anything of this step is kept, a pending save included
                self._fenced()
            self.last_loss = loss
            if self.step == self.start_step:  # warm-up done: a dead peer now fails fast
                _set_timeout(cfg.step_timeout_s, [None, self.ckpt_pg])
            self.step += 1
            self.cursor = self.cursor.advance()
            self.faults.hit("train", self.step)
            self.faults.hit("hang", self.step)
            if cfg.step_sleep_s:
                time.sleep(cfg.step_sleep_s)
            step_s = time.perf_counter() - started
            self._report_save(self.ckpt.poll() if self.ckpt else None)
            if stop and self.step < cfg.total_steps:  # at the last step, finishing is the better exit
                self._drain()
            if self.ckpt and cfg.checkpoint_interval and self.step % cfg.checkpoint_interval == 0:
                final = self.step == cfg.total_steps
                self._report_save(
                    self.ckpt.save(self.step, self.cursor, self.state, cfg.checkpoint_async and not final)
                )
            self.progress.emit(
                "progress",
                step=self.step,
                total_steps=cfg.total_steps,
                epoch=self.cursor.epoch,
                samples_seen=self.step * cfg.global_batch,
                loss=loss,
                world_size=self.env.world_size,
                restart_count=self.env.restart_count,
                committed_step=self.committed_step,
                step_s=round(step_s, 5),
                save_s=round(self.last_save_s, 4),
            )
            self.live.maybe_post(self.step, cfg.total_steps, loss, self.committed_step)
            self.tracker.log_metrics(
                self.step, {"loss": loss, "step_s": step_s, "world_size": self.env.world_size}
            )
        if self.ckpt:
            self._report_save(self.ckpt.wait())
            if self.committed_step != self.step:
                self._report_save(self.ckpt.save(self.step, self.cursor, self.state, False))
            # rank 0 may have been refused the final commit: no rank may then report the job completed
            verdict = torch.tensor([float(self.fenced_here())], dtype=torch.float64)
            dist.all_reduce(verdict)
            if verdict.item() > 0:
                self._fenced()

    def _fenced(self) -> None:
        if self.ckpt is not None:
            self.ckpt.abandon()
        mine = self.fence.mine if self.fence else None
        seen = self.fence.seen if self.fence else None
        self.progress.emit(
            "fenced",
            step=self.step,
            committed_step=self.committed_step,
            epoch=mine.epoch if mine else None,
            owner=mine.owner if mine else None,
            seen_epoch=seen.epoch if seen else None,
            seen_owner=seen.owner if seen else None,
        )
        raise Fenced

    def _drain(self) -> None:
        if self.ckpt is not None:
            self._report_save(self.ckpt.wait())
            if self.committed_step != self.step:
                self._report_save(self.ckpt.save(self.step, self.cursor, self.state, False))
        self.progress.emit(
            "drain", step=self.step, committed_step=self.committed_step, signal=self.stop.signum
        )
        raise Drained

    def _report_save(self, result: SaveResult | None) -> None:
        if result is None:
            return
        self.last_save_s = result.save_s
        self.progress.emit(
            "checkpoint",
            step=result.step,
            save_s=round(result.save_s, 4),
            blocking_s=round(result.blocking_s, 4),
            asynchronous=result.asynchronous,
        )

    def _log_samples(self, ids: list[int]) -> None:
        if self.cfg.sample_log_dir is None:
            return
        path = self.cfg.sample_log_dir / f"samples-rank{self.env.rank}-pid{os.getpid()}.jsonl"
        record = {
            "step": self.step + 1,
            "rank": self.env.rank,
            "world_size": self.env.world_size,
            "ids": ids,
            "ts": time.time(),
        }
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def final_checkpoint(self) -> Path | None:
        if self.ckpt is None or self.committed_step is None:
            return None
        return self.ckpt.root / contract.step_dir_name(self.committed_step)


def _terminate(cfg: TrainConfig, env: DistEnv, reason: str, trainer: Trainer | None, error: str = "") -> None:
    if env.local_rank != 0:
        return
    ckpt = trainer.ckpt if trainer else None
    message: contract.TerminationMessage = {
        "reason": reason,
        "step": trainer.step if trainer else None,
        "total_steps": cfg.total_steps,
        "loss": trainer.last_loss if trainer else None,
        "committed_step": trainer.committed_step if trainer else None,
        "committed_time": round(ckpt.committed_time, 3) if ckpt and ckpt.committed_time else None,
        "world_size": env.world_size,
        "error": error,
    }
    write_termination_message(cfg.termination_log, message)


@record
def main() -> int:
    """Run one attempt; returns the process exit code (see :mod:`workloads`)."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s rank=%(rank)s %(message)s",
    )
    cfg = TrainConfig.from_env({**os.environ, **args_to_env(sys.argv[1:])})
    env = DistEnv.from_env()
    old_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        rec = old_factory(*args, **kwargs)
        rec.rank = env.rank
        return rec

    logging.setLogRecordFactory(factory)
    log.info("start %s", env)
    trainer: Trainer | None = None
    try:
        device = init_distributed(cfg, env)
        trainer = Trainer(cfg, env, device)
        trainer.progress.emit(
            "start", world_size=env.world_size, restart_count=env.restart_count, run_id=env.run_id
        )
        trainer.claim()
        trainer.resume()
        trainer.start_step = trainer.step
        if env.rank == 0 and cfg.mlflow_tracking_uri:
            trainer.tracker = MlflowTracker.open(
                cfg.mlflow_tracking_uri, cfg.mlflow_experiment, cfg.checkpoint_dir, cfg.params()
            )
        trainer.run()
    except Drained:
        trainer_ = trainer
        assert trainer_ is not None
        trainer_.tracker.finish("KILLED", trainer_.final_checkpoint())
        _terminate(cfg, env, "drained", trainer_)
        dist.destroy_process_group()
        log.info("drained at step %d, exiting %d", trainer_.step, contract.EXIT_DRAINED)
        return contract.EXIT_DRAINED
    except Fenced:
        trainer_ = trainer
        assert trainer_ is not None
        # no tracker.finish: the experiment run is the newer group's now
        error = "fenced: a newer worker group owns the checkpoint directory"
        _terminate(cfg, env, "fenced", trainer_, error)
        dist.destroy_process_group()
        log.warning("fenced at step %d, exiting %d", trainer_.step, contract.EXIT_FENCED)
        return contract.EXIT_FENCED
    except BaseException as err:
        _terminate(cfg, env, "failed", trainer, f"{type(err).__name__}: {err}")
        if trainer is not None:
            trainer.tracker.finish("FAILED", trainer.final_checkpoint())
        raise
    trainer.progress.emit("end", step=trainer.step, committed_step=trainer.committed_step)
    trainer.tracker.finish("FINISHED", trainer.final_checkpoint(), trainer.live.job_accounting())
    _terminate(cfg, env, "completed", trainer)
    dist.destroy_process_group()
    return contract.EXIT_COMPLETED


if __name__ == "__main__":
    sys.exit(main())
