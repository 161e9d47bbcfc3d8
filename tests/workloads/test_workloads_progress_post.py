"""The workload's live progress poster against a loopback stub of the operator's endpoint (no torch)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import contract
from controller.torchjob.progress import check_checkpoint, parse_body
from controller.torchjob.progress_endpoint import PATH
from tests.controller.torchjob.plans import make_job
from tests.workloads.progress_stub import Stub, progress_stub
from workloads.progress import LivePoster, accounting_of_answer


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    with progress_stub() as served:
        yield served


def env_for(url: str, token: Path) -> dict[str, str]:
    return {contract.PROGRESS_URL: url, contract.PROGRESS_TOKEN_FILE: str(token)}


def test_rank_0_posts_what_the_endpoint_accepts(stub: tuple[Stub, str], tmp_path: Path) -> None:
    seen, url = stub
    token = tmp_path / "token"
    token.write_text("first-token\n")
    job = make_job(checkpoint={"volume": {"emptyDir": {}}, "path": "/ckpt"})
    poster = LivePoster.from_env(env_for(url, token), rank=0, checkpoint_dir=Path("/ckpt"))
    assert poster.post(40, 200, 0.25, 30)
    path, headers, body = seen.requests[0]
    assert path == PATH
    assert headers["Authorization"] == "Bearer first-token"
    assert headers["Content-Type"] == "application/json"
    parsed = parse_body(body)
    assert (parsed.step, parsed.total_steps, parsed.loss, parsed.checkpoint_step) == (40, 200, 0.25, 30)
    check_checkpoint(job, parsed)  # the path is the one the operator expects
    token.write_text("rotated-token")
    assert poster.post(41, 200, float("nan"), None)
    _, headers, body = seen.requests[1]
    assert headers["Authorization"] == "Bearer rotated-token", "the token file is read on every post"
    assert json.loads(body) == {"step": 41, "totalSteps": 200}, "a NaN loss is left out, not sent"


def test_every_kth_step_and_the_last(stub: tuple[Stub, str], tmp_path: Path) -> None:
    seen, url = stub
    token = tmp_path / "token"
    token.write_text("t")
    poster = LivePoster(url, token, every=10)
    posted = [step for step in range(1, 26) if poster.maybe_post(step, 25, 1.0, None)]
    assert posted == [10, 20, 25]
    assert [json.loads(b)["step"] for _, _, b in seen.requests] == [10, 20, 25]


def test_off_unless_configured_and_rank_0(stub: tuple[Stub, str], tmp_path: Path) -> None:
    seen, url = stub
    token = tmp_path / "token"
    token.write_text("t")
    for poster in (
        LivePoster.from_env(env_for(url, token), rank=1),
        LivePoster.from_env({contract.PROGRESS_URL: url}, rank=0),
        LivePoster.from_env({}, rank=0),
    ):
        assert poster.endpoint is None
        assert not poster.maybe_post(10, 10, 1.0, None)
        assert not poster.post(10, 10, 1.0, None)
    assert seen.requests == []


def test_failures_never_raise_and_are_logged_once_per_streak(
    stub: tuple[Stub, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen, url = stub
    token = tmp_path / "token"
    token.write_text("t")
    poster = LivePoster(url, token, timeout=1.0)
    seen.status = 403
    with caplog.at_level(logging.INFO, logger="workloads.progress"):
        assert not poster.post(1, None, None, None)
        assert not poster.post(2, None, None, None)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "HTTP 403: pod is not a TorchJob worker" in warnings[0].getMessage()
        seen.status = 202
        assert poster.post(3, None, None, None)
        assert any("again" in r.getMessage() for r in caplog.records)
        token.unlink()
        assert not poster.post(4, None, None, None), "a missing token file is a failed post, not a crash"
        unreachable = LivePoster("http://127.0.0.1:9", token, timeout=0.5)
        assert not unreachable.post(5, None, None, None)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3


ACCOUNTING: contract.ProgressAccounting = {
    "cost": 4.5,
    "currency": "EUR",
    "goodputPercent": 90.0,
    "lostSeconds": {"queued": 10.0, "restarting": 0.0, "preempted": 5.0, "recomputed": 2.5},
}


def test_the_poster_keeps_the_newest_accounting_an_answer_carried(
    stub: tuple[Stub, str], tmp_path: Path
) -> None:
    seen, url = stub
    token = tmp_path / "token"
    token.write_text("t")
    poster = LivePoster(url, token)
    assert poster.post(10, 30, 1.0, None)
    assert poster.accounting is None, "an answer without accounting (an older operator) is still accepted"
    assert poster.job_accounting() == (
        None,
        "no answer of the operator's progress endpoint carried the job's accounting",
    )
    seen.extra = {"accounting": ACCOUNTING}
    assert poster.post(20, 30, 1.0, None)
    assert poster.job_accounting() == (ACCOUNTING, "")
    newer: contract.ProgressAccounting = {**ACCOUNTING, "cost": 5.0, "goodputPercent": 91.0}
    seen.extra = {"accounting": newer}
    assert poster.post(30, 30, 1.0, None)
    assert poster.accounting == newer
    seen.extra = {}
    assert poster.post(30, 30, 1.0, None)
    assert poster.accounting == newer, "an answer without accounting does not forget the last one"
    seen.status, seen.extra = 403, {"accounting": {"cost": 99.0}}
    assert not poster.post(30, 30, 1.0, None)
    assert poster.accounting == newer, "a refusal's body is never taken as accounting"


def test_off_poster_says_why_it_has_no_accounting(tmp_path: Path) -> None:
    accounting, why = LivePoster.from_env({}, rank=0).job_accounting()
    assert accounting is None
    assert why == f"live progress is off (no {contract.PROGRESS_URL}, or not global rank 0)"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"", None),
        (b"not json", None),
        (b"[1]", None),
        (b'{"status": 202, "message": "accepted for TorchJob team-a/llama"}', None),
        (b'{"status": 202, "message": "m", "accounting": "cheap"}', None),
        (b'{"status": 202, "message": "m", "accounting": {}}', None),
        (
            b'{"accounting": {"cost": -1, "currency": "EUR", "goodputPercent": true, '
            b'"lostSeconds": {"queued": "x", "preempted": 3, "future": 1}, "newField": 1}}',
            {"lostSeconds": {"preempted": 3.0}},
        ),
        (b'{"accounting": {"currency": "EUR", "goodputPercent": 55.5}}', {"goodputPercent": 55.5}),
        (b'{"accounting": {"cost": 2, "currency": ""}}', {"cost": 2.0}),
    ],
)
def test_answers_are_read_leniently(answer: bytes, expected: contract.ProgressAccounting | None) -> None:
    """Old, new or broken operators never break a worker: what is not understood is left out."""
    assert accounting_of_answer(answer) == expected
