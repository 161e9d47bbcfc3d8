"""Training configuration and the torchrun-provided process identity, both read from env."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from api import contract


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    return int(raw) if raw.strip() else default


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    return float(raw) if raw.strip() else default


# Training knobs users set as arguments (spec.args): the PYROCLAST_* names are reserved for the operator at
# admission, so a TorchJob cannot set them as env. Flags win over env.
_FLAGS: dict[str, str] = {
    "--total-steps": contract.TOTAL_STEPS,
    "--global-batch": contract.GLOBAL_BATCH,
    "--dataset-size": contract.DATASET_SIZE,
    "--seed": contract.SEED,
    "--lr": contract.LR,
    "--model-width": contract.MODEL_WIDTH,
    "--model-depth": contract.MODEL_DEPTH,
    "--checkpoint-async": contract.CHECKPOINT_ASYNC,
    "--mlflow-experiment": contract.MLFLOW_EXPERIMENT,
    "--step-sleep": contract.STEP_SLEEP,
}


def args_to_env(argv: Sequence[str]) -> dict[str, str]:
    """The env settings named by command-line flags such as ``--total-steps 500``."""
    parser = argparse.ArgumentParser(prog="torchrun -m workloads.train", description="Reference training.")
    for flag, name in _FLAGS.items():
        parser.add_argument(flag, dest=name, metavar="VALUE", help=f"sets {name}")
    parsed = vars(parser.parse_args(list(argv)))
    return {name: str(value) for name, value in parsed.items() if value is not None}


@dataclass(frozen=True)
class TrainConfig:
    """Job-wide settings; identical on every rank."""

    checkpoint_dir: Path | None = None
    resume_from: Path | None = None
    checkpoint_interval: int = 50
    checkpoint_keep: int = 3
    checkpoint_async: bool = False
    total_steps: int = 100
    global_batch: int = 32
    dataset_size: int = 1024
    seed: int = 0
    lr: float = 0.05
    model_width: int = 32
    model_depth: int = 2
    progress_file: Path | None = None
    termination_log: Path = Path(contract.DEFAULT_TERMINATION_LOG)
    init_timeout_s: float = 300.0
    step_timeout_s: float = 60.0
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "pyroclast"
    step_sleep_s: float = 0.0
    sample_log_dir: Path | None = None
    fault: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainConfig:
        """Read every ``PYROCLAST_*`` setting; unset or empty values take the defaults."""
        e = os.environ if env is None else env
        d = cls()
        cfg = cls(
            checkpoint_dir=Path(e[contract.CHECKPOINT_DIR]) if e.get(contract.CHECKPOINT_DIR) else None,
            resume_from=Path(e[contract.RESUME_FROM]) if e.get(contract.RESUME_FROM) else None,
            checkpoint_interval=_int(e, contract.CHECKPOINT_INTERVAL, d.checkpoint_interval),
            checkpoint_keep=_int(e, contract.CHECKPOINT_KEEP, d.checkpoint_keep),
            checkpoint_async=e.get(contract.CHECKPOINT_ASYNC, "0") == "1",
            total_steps=_int(e, contract.TOTAL_STEPS, d.total_steps),
            global_batch=_int(e, contract.GLOBAL_BATCH, d.global_batch),
            dataset_size=_int(e, contract.DATASET_SIZE, d.dataset_size),
            seed=_int(e, contract.SEED, d.seed),
            lr=_float(e, contract.LR, d.lr),
            model_width=_int(e, contract.MODEL_WIDTH, d.model_width),
            model_depth=_int(e, contract.MODEL_DEPTH, d.model_depth),
            progress_file=Path(e[contract.PROGRESS_FILE]) if e.get(contract.PROGRESS_FILE) else None,
            termination_log=Path(e.get(contract.TERMINATION_LOG) or contract.DEFAULT_TERMINATION_LOG),
            init_timeout_s=_float(e, contract.INIT_TIMEOUT, d.init_timeout_s),
            step_timeout_s=_float(e, contract.STEP_TIMEOUT, d.step_timeout_s),
            mlflow_tracking_uri=e.get(contract.MLFLOW_TRACKING_URI) or None,
            mlflow_experiment=e.get(contract.MLFLOW_EXPERIMENT) or d.mlflow_experiment,
            step_sleep_s=_float(e, contract.STEP_SLEEP, d.step_sleep_s),
            sample_log_dir=Path(e[contract.SAMPLE_LOG_DIR]) if e.get(contract.SAMPLE_LOG_DIR) else None,
            fault=e.get(contract.FAULT) or None,
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Fail fast on settings that cannot train."""
        if self.total_steps < 0 or self.global_batch <= 0 or self.checkpoint_interval < 0:
            raise ValueError("total_steps, checkpoint_interval must be >= 0 and global_batch > 0")
        if self.dataset_size < self.global_batch:
            raise ValueError(f"dataset_size {self.dataset_size} < global_batch {self.global_batch}")
        if self.checkpoint_keep < 1:
            raise ValueError("checkpoint_keep must be >= 1")

    def params(self) -> dict[str, str]:
        """Hyperparameters as strings, for experiment tracking."""
        # per-attempt or test-only settings: a resumed MLflow run refuses changed params
        skip = {
            "progress_file",
            "termination_log",
            "sample_log_dir",
            "fault",
            "mlflow_tracking_uri",
            "resume_from",
        }
        return {k: str(v) for k, v in asdict(self).items() if k not in skip}


@dataclass(frozen=True)
class DistEnv:
    """This worker's identity as torchrun exports it; never assumed stable across restarts."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    group_rank: int = 0
    restart_count: int = 0
    max_restarts: int = 0
    run_id: str = "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistEnv:
        """Read torchrun's worker env (defaults describe a single plain process)."""
        e = os.environ if env is None else env
        return cls(
            rank=_int(e, "RANK", 0),
            local_rank=_int(e, "LOCAL_RANK", 0),
            world_size=_int(e, "WORLD_SIZE", 1),
            local_world_size=_int(e, "LOCAL_WORLD_SIZE", 1),
            group_rank=_int(e, "GROUP_RANK", 0),
            restart_count=_int(e, "TORCHELASTIC_RESTART_COUNT", 0),
            max_restarts=_int(e, "TORCHELASTIC_MAX_RESTARTS", 0),
            run_id=e.get("TORCHELASTIC_RUN_ID", "none"),
        )
