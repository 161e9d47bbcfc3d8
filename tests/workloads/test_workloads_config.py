"""Env parsing: the workload settings, torchrun's identity, fault plans, operator-facing output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api import contract
from workloads.config import DistEnv, TrainConfig, args_to_env
from workloads.faults import FaultPlan
from workloads.progress import ProgressReporter, write_termination_message


def test_defaults_when_env_is_empty() -> None:
    cfg = TrainConfig.from_env({})
    assert cfg.checkpoint_dir is None
    assert cfg.termination_log == Path("/dev/termination-log")
    assert (cfg.total_steps, cfg.checkpoint_interval, cfg.checkpoint_async) == (100, 50, False)


def test_reads_every_contract_variable(tmp_path: Path) -> None:
    env = {
        contract.CHECKPOINT_DIR: str(tmp_path),
        contract.CHECKPOINT_INTERVAL: "7",
        contract.CHECKPOINT_KEEP: "2",
        contract.CHECKPOINT_ASYNC: "1",
        contract.TOTAL_STEPS: "70",
        contract.GLOBAL_BATCH: "16",
        contract.DATASET_SIZE: "160",
        contract.SEED: "3",
        contract.LR: "0.5",
        contract.PROGRESS_FILE: str(tmp_path / "p.jsonl"),
        contract.TERMINATION_LOG: str(tmp_path / "t"),
        contract.STEP_TIMEOUT: "9",
        contract.MLFLOW_TRACKING_URI: "http://127.0.0.1:1",
    }
    cfg = TrainConfig.from_env(env)
    assert cfg.checkpoint_dir == tmp_path
    assert (cfg.checkpoint_interval, cfg.checkpoint_keep, cfg.checkpoint_async) == (7, 2, True)
    assert (cfg.total_steps, cfg.global_batch, cfg.dataset_size, cfg.seed, cfg.lr) == (70, 16, 160, 3, 0.5)
    assert cfg.progress_file == tmp_path / "p.jsonl"
    assert cfg.termination_log == tmp_path / "t"
    assert cfg.step_timeout_s == 9.0
    assert cfg.mlflow_tracking_uri == "http://127.0.0.1:1"
    assert "fault" not in cfg.params()
    assert cfg.params()["global_batch"] == "16"


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({contract.GLOBAL_BATCH: "0"}, "global_batch"),
        ({contract.DATASET_SIZE: "4", contract.GLOBAL_BATCH: "8"}, "dataset_size"),
        ({contract.CHECKPOINT_KEEP: "0"}, "checkpoint_keep"),
    ],
)
def test_invalid_settings_fail_fast(env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_env(env)


def test_dist_env_from_torchrun_variables() -> None:
    env = DistEnv.from_env(
        {
            "RANK": "3",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "4",
            "TORCHELASTIC_RESTART_COUNT": "2",
            "GROUP_RANK": "1",
        }
    )
    assert (env.rank, env.local_rank, env.world_size, env.restart_count, env.group_rank) == (3, 1, 4, 2, 1)


def test_fault_list_gives_one_fault_per_attempt() -> None:
    spec = "before_write@4,mid_write@6@1"
    assert FaultPlan.for_attempt(spec, 0) == FaultPlan("before_write", 4, 0)
    assert FaultPlan.for_attempt(spec, 1) == FaultPlan("mid_write", 6, 1)
    assert FaultPlan.for_attempt(spec, 2) is None
    assert FaultPlan.for_attempt(None, 0) is None
    with pytest.raises(ValueError, match="phase"):
        FaultPlan.parse("explode@3")


def test_progress_goes_to_stdout_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sub" / "progress.jsonl"
    reporter = ProgressReporter(True, path)
    reporter.emit("progress", step=1, loss=0.5)
    reporter.emit("end", step=1)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["progress", "end"]
    assert lines[0]["loss"] == 0.5
    assert json.loads(capsys.readouterr().out.splitlines()[0])["step"] == 1
    ProgressReporter(False, tmp_path / "other").emit("progress", step=1)
    assert not (tmp_path / "other").exists()


def test_termination_message_fits_kubelet_limit(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    message: contract.TerminationMessage = {
        "reason": "failed",
        "step": 3,
        "total_steps": 10,
        "loss": None,
        "committed_step": None,
        "committed_time": None,
        "world_size": 2,
        "error": "x" * 10_000,
    }
    write_termination_message(path, message)
    text = path.read_text()
    assert len(text) <= contract.MAX_TERMINATION_MESSAGE
    assert json.loads(text)["reason"] == "failed"


def test_flags_set_training_knobs_and_win_over_env() -> None:
    env = {contract.TOTAL_STEPS: "10", contract.LR: "0.5"}
    merged = {**env, **args_to_env(["--total-steps", "500", "--global-batch", "64"])}
    cfg = TrainConfig.from_env(merged)
    assert (cfg.total_steps, cfg.global_batch, cfg.lr) == (500, 64, 0.5)


def test_unknown_flag_is_refused() -> None:
    with pytest.raises(SystemExit):
        args_to_env(["--checkpoint-dir", "/elsewhere"])
