"""PYROCLAST_RESUME_FROM: the operator's record of the last commit, checked before it is trusted."""

from __future__ import annotations

from pathlib import Path

from api import contract
from tests.workloads.commits import complete
from workloads import commit
from workloads.config import TrainConfig


def test_no_hint_resumes_from_latest(tmp_path: Path) -> None:
    complete(tmp_path, 4)
    commit.publish_latest(tmp_path, 4)
    assert commit.resume_dir(tmp_path, None) == tmp_path / "step-000000000004"


def test_hint_newer_than_a_lost_latest_pointer_wins(tmp_path: Path) -> None:
    complete(tmp_path, 4)
    commit.publish_latest(tmp_path, 4)
    newer = complete(tmp_path, 8)  # complete, but `latest` was not moved (or was lost)
    assert commit.committed_step_dir(tmp_path) == tmp_path / "step-000000000004"
    assert commit.resume_dir(tmp_path, newer) == newer
    (tmp_path / commit.LATEST).unlink()
    assert commit.resume_dir(tmp_path, newer) == newer


def test_older_hint_never_moves_resume_back(tmp_path: Path) -> None:
    old = complete(tmp_path, 4)
    complete(tmp_path, 8)
    commit.publish_latest(tmp_path, 8)
    assert commit.resume_dir(tmp_path, old) == tmp_path / "step-000000000008"


def test_incomplete_or_foreign_hints_are_ignored(tmp_path: Path) -> None:
    complete(tmp_path, 4)
    commit.publish_latest(tmp_path, 4)
    partial = commit.prepare_fresh(tmp_path, 8)  # data written, no .metadata/manifest
    elsewhere = complete(tmp_path / "other", 12)
    odd = tmp_path / "step-12"
    odd.mkdir()
    latest = tmp_path / "step-000000000004"
    for hint in (partial, elsewhere, odd, tmp_path / "step-000000000099"):
        assert commit.resume_dir(tmp_path, hint) == latest


def test_hint_is_read_from_the_env() -> None:
    cfg = TrainConfig.from_env(
        {contract.CHECKPOINT_DIR: "/ckpt", contract.RESUME_FROM: "/ckpt/step-000000000010"}
    )
    assert cfg.resume_from == Path("/ckpt/step-000000000010")
    assert TrainConfig.from_env({}).resume_from is None
