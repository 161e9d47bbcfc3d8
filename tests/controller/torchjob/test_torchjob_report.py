"""Workload reports (termination messages) folded into status.lastCheckpoint and status.progress."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api import Phase, TorchJobStatus, contract
from api.status import CheckpointStatus
from controller.torchjob.plan import REASON_CHECKPOINT, CreateObject, plan
from controller.torchjob.report import apply_reports, checkpoint_path, read_report
from tests.controller.torchjob.plans import T0, make_job, pod, podgroup, running_job, with_status

CKPT: dict[str, Any] = {"checkpoint": {"volume": {"emptyDir": {}}, "path": "/ckpt/"}}
COMMITTED = datetime(2026, 11, 23, 11, 58, 20, tzinfo=UTC)


def reported(
    job: Any, index: int, message: object, *, phase: str = "Failed", code: int = 1
) -> dict[str, Any]:
    obj = pod(job, index, phase=phase, exit_code=code)
    text = message if isinstance(message, str) else json.dumps(message)
    obj["status"]["containerStatuses"][0]["state"]["terminated"].update(
        message=text, finishedAt="2026-11-23T11:59:00Z"
    )
    return obj


def report(step: int, committed: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "reason": "failed",
        "step": step,
        "total_steps": 100,
        "loss": 0.25,
        "committed_step": committed,
        "committed_time": COMMITTED.timestamp(),
        "world_size": 2,
        "error": "",
        **extra,
    }


def test_report_is_read_from_the_trainer_termination_message() -> None:
    job = make_job(**CKPT)
    got = read_report(reported(job, 0, report(13, 10)))
    assert got is not None
    assert (got.step, got.total_steps, got.loss, got.committed_step) == (13, 100, 0.25, 10)
    assert got.committed_time == COMMITTED
    assert got.finished == datetime(2026, 11, 23, 11, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "message",
    [
        "Traceback (most recent call last): ...",  # FallbackToLogsOnError's log tail
        "{not json",
        "[1, 2]",
        "{" + " " * 5000 + "}",
    ],
)
def test_non_reports_are_ignored(message: str) -> None:
    assert read_report(reported(make_job(**CKPT), 0, message)) is None


def test_running_pod_and_store_pod_have_no_report() -> None:
    job = make_job(**CKPT)
    assert read_report(pod(job, 0)) is None
    assert read_report({"metadata": {"name": "x", "labels": {}}, "status": {}}) is None


def test_bad_fields_are_dropped_not_trusted() -> None:
    job = make_job(**CKPT)
    bad = report(-1, True, loss=float("nan"), total_steps="100", committed_time="yesterday")
    got = read_report(reported(job, 0, json.dumps(bad, allow_nan=True)))
    assert got is not None
    assert (got.step, got.committed_step, got.loss, got.total_steps, got.committed_time) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_newest_checkpoint_wins_and_path_is_built_by_the_operator() -> None:
    job = make_job(**CKPT)
    status = TorchJobStatus()
    pods = [reported(job, 0, report(13, 10, path="/etc")), reported(job, 1, report(12, 8))]
    assert apply_reports(job, status, pods, T0)
    assert status.last_checkpoint == CheckpointStatus(step=10, time=COMMITTED, path="/ckpt/step-000000000010")
    assert status.progress is not None
    assert (status.progress.step, status.progress.total_steps, status.progress.loss) == (13, 100, 0.25)
    assert status.progress.updated_time == datetime(2026, 11, 23, 11, 59, tzinfo=UTC)
    # an older report (a restarted attempt that had not committed yet) never moves it back
    assert not apply_reports(job, status, [reported(job, 0, report(3, None))], T0)
    assert status.last_checkpoint is not None
    assert status.last_checkpoint.step == 10
    assert checkpoint_path(job, 10) == "/ckpt/step-000000000010"


def test_without_a_checkpoint_volume_only_progress_is_kept() -> None:
    job = make_job()
    status = TorchJobStatus()
    assert not apply_reports(job, status, [reported(job, 0, report(5, 4))], T0)
    assert status.last_checkpoint is None
    assert status.progress is not None
    assert status.progress.step == 5


def test_failed_attempt_records_its_checkpoint_and_restarted_pods_resume_from_it() -> None:
    job, pg, svc = running_job(**CKPT)
    failed = plan(job, pg, [reported(job, 0, report(13, 10)), pod(job, 1)], svc, T0 + timedelta(seconds=9))
    assert failed.status.phase == Phase.RESTARTING
    assert failed.commit_first  # the checkpoint is written with the restart decision
    assert failed.status.last_checkpoint is not None
    assert failed.status.last_checkpoint.step == 10
    assert REASON_CHECKPOINT in [e.reason for e in failed.events]
    job = with_status(job, failed)
    again = plan(job, podgroup(job, "Running"), [], svc, T0 + timedelta(seconds=20))
    bodies = [a.body for a in again.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    assert len(bodies) == 2
    for body in bodies:
        trainer = body["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in trainer["env"]}
        assert env[contract.RESUME_FROM] == "/ckpt/step-000000000010"
        assert env[contract.CHECKPOINT_DIR] == "/ckpt/"
        assert {"name": "pyroclast-checkpoint", "mountPath": "/ckpt/"} in trainer["volumeMounts"]


def test_first_attempt_has_nothing_to_resume_from() -> None:
    step = plan(make_job(**CKPT), None, [], None, T0)
    bodies = [a.body for a in step.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    assert bodies
    assert all(
        contract.RESUME_FROM not in {e["name"] for e in b["spec"]["containers"][0]["env"]} for b in bodies
    )
