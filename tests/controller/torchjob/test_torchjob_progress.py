"""Live progress, the pure parts: body, TokenReview answer, who may report, the fold, and the worker pod."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from api import Phase, TorchJobStatus, contract
from api.accounting import Goodput, LostTime, Usage
from api.status import CheckpointStatus, Progress
from controller.runtime.httpserver import Tls
from controller.torchjob.plan import REASON_CHECKPOINT, CreateObject, plan
from controller.torchjob.pod import desired_worker
from controller.torchjob.progress import (
    TOKEN_VOLUME,
    Body,
    Identity,
    accounting_of,
    apply_live,
    check_checkpoint,
    identity_from_review,
    parse_body,
)
from controller.torchjob.progress_endpoint import Address, job_of_worker
from pyroclast.cli import build_parser
from pyroclast.operator import progress_options, run
from tests.controller.torchjob.plans import T0, make_job, pod, running_job
from tests.controller.torchjob.progress_reports import CKPT, IDENTITY, URL, live, rejected, review


def test_full_body_parses() -> None:
    body = parse_body(
        b'{"step": 40, "totalSteps": 200, "loss": 0.5, "checkpoint": {"step": 20, "path": "/c"}}'
    )
    assert body == Body(step=40, total_steps=200, loss=0.5, checkpoint_step=20, checkpoint_path="/c")
    assert parse_body(b'{"step": 0, "loss": null}') == Body(0, None, None, None, None)


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "body must be a JSON object"),
        (b"{}", "step is required"),
        (b'{"step": -1}', "step is required and must be an integer >= 0"),
        (b'{"step": true}', "step"),
        (b'{"step": 1.5}', "step"),
        (b'{"step": 1, "totalSteps": "9"}', "totalSteps must be an integer"),
        (b'{"step": 1, "loss": NaN}', "loss must be a finite number"),
        (b'{"step": 1, "loss": Infinity}', "loss must be a finite number"),
        (b'{"step": 1, "checkpoint": 5}', "checkpoint must be a JSON object"),
        (b'{"step": 1, "checkpoint": {"path": "/c"}}', "checkpoint.step is required"),
        (b'{"step": 1, "checkpoint": {"step": 2, "path": 3}}', "checkpoint.path must be a string"),
        (b'{"step": 1, "rank": 0}', "unknown field(s) rank"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(data: bytes, names: str) -> None:
    assert names in rejected(400, parse_body, data)


def test_identity_comes_from_the_service_account_and_pod_claims() -> None:
    assert identity_from_review(review()) == Identity("team-a", "default", "llama-worker-0", "uid-0-0")


def test_unverifiable_tokens_are_401() -> None:
    assert "token has expired" in rejected(
        401, identity_from_review, review(authenticated=False, error="token has expired")
    )
    assert contract.PROGRESS_AUDIENCE in rejected(
        401, identity_from_review, review(audiences=["https://kubernetes.default"])
    )
    assert "not to a service account" in rejected(401, identity_from_review, review(username="alice"))
    assert "not bound to a pod" in rejected(401, identity_from_review, review(pod_claims=False))


def test_a_current_worker_reports_for_its_job() -> None:
    job, _, _ = running_job()
    assert job_of_worker(IDENTITY, pod(job, 0), job.to_k8s()).metadata.name == "llama"


def test_other_pods_are_403() -> None:
    job, _, _ = running_job()
    raw = job.to_k8s()
    worker = pod(job, 0)
    assert "gone or replaced" in rejected(403, job_of_worker, IDENTITY, None, raw)
    replaced = Identity("team-a", "default", "llama-worker-0", "another-uid")
    assert "gone or replaced" in rejected(403, job_of_worker, replaced, worker, raw)
    plain = {"metadata": {"name": "llama-worker-0", "uid": "uid-0-0", "labels": {}}}
    assert "not a TorchJob worker" in rejected(403, job_of_worker, IDENTITY, plain, raw)
    assert "does not exist" in rejected(403, job_of_worker, IDENTITY, worker, None)
    other = {**raw, "metadata": {**raw["metadata"], "uid": "another-job"}}
    assert "not owned by" in rejected(403, job_of_worker, IDENTITY, worker, other)
    deleting = pod(job, 0, deleting=True)
    assert "being deleted" in rejected(403, job_of_worker, IDENTITY, deleting, raw)
    later = Identity("team-a", "default", "llama-worker-0", "uid-0-1")
    assert "not of the current attempt (0)" in rejected(
        403, job_of_worker, later, pod(job, 0, attempt=1), raw
    )
    restarted = {**raw, "status": {**raw["status"], "failureRestarts": 1}}
    assert "not of the current attempt (1)" in rejected(403, job_of_worker, IDENTITY, worker, restarted)
    done = {**raw, "status": {**raw["status"], "phase": "Succeeded"}}
    assert "has finished" in rejected(403, job_of_worker, IDENTITY, worker, done)


def test_a_checkpoint_must_be_where_the_job_commits_it() -> None:
    job = make_job(**CKPT)
    check_checkpoint(job, Body(5, None, None, 4, "/ckpt/step-000000000004"))
    check_checkpoint(job, Body(5, None, None, 4, None))  # the operator builds the path itself
    assert "checkpoint.path must be /ckpt/step-000000000004" in rejected(
        400, check_checkpoint, job, Body(5, None, None, 4, "/etc")
    )
    assert "no spec.checkpoint" in rejected(400, check_checkpoint, make_job(), Body(5, None, None, 4, None))


def test_latest_live_report_becomes_progress_and_a_newer_checkpoint_the_last_one() -> None:
    job = make_job(**CKPT)
    uid = job.metadata.uid or ""
    status = TorchJobStatus()
    assert apply_live(job, status, live(uid, 12, ckpt=10))
    assert status.progress == Progress(step=12, total_steps=100, loss=0.5, updated_time=T0)
    assert status.last_checkpoint == CheckpointStatus(step=10, time=T0, path="/ckpt/step-000000000010")
    assert not apply_live(job, status, live(uid, 12, ckpt=10)), "folding again changes nothing"
    assert not apply_live(job, status, live(uid, 3, ckpt=2, at=5)), "a checkpoint never moves back"
    assert status.last_checkpoint is not None
    assert status.last_checkpoint.step == 10
    assert status.progress is not None
    assert status.progress.step == 3, "the newest report is the progress (a restarted attempt starts lower)"


def test_older_or_foreign_reports_are_ignored() -> None:
    job = make_job(**CKPT)
    newer = Progress(step=50, updated_time=T0 + timedelta(seconds=30))
    status = TorchJobStatus(progress=newer)
    assert not apply_live(job, status, live(job.metadata.uid or "", 40))
    assert status.progress == newer
    assert not apply_live(job, status, live("an-earlier-job-of-that-name", 60, ckpt=60, at=60))
    assert (status.progress, status.last_checkpoint) == (newer, None)
    assert not apply_live(job, status, None)


def test_without_a_checkpoint_volume_only_progress_is_kept() -> None:
    job = make_job()
    status = TorchJobStatus()
    assert not apply_live(job, status, live(job.metadata.uid or "", 8, ckpt=5))
    assert status.last_checkpoint is None
    assert status.progress is not None


def test_plan_folds_the_live_report_and_records_the_commit_once() -> None:
    job, pg, svc = running_job(**CKPT)
    pods = [pod(job, i) for i in range(2)]
    step = plan(job, pg, pods, svc, T0, live=live(job.metadata.uid or "", 30, ckpt=20))
    assert step.status.phase == Phase.RUNNING
    assert step.status.progress is not None
    assert step.status.progress.step == 30
    assert step.status.last_checkpoint is not None
    assert step.status.last_checkpoint.step == 20
    assert [e.reason for e in step.events] == [REASON_CHECKPOINT]
    assert step.actions == []


def test_with_a_progress_url_workers_get_a_pod_bound_token_and_the_two_variables() -> None:
    job = make_job()
    worker = desired_worker(job, 0, 0, progress_url=URL)
    (volume,) = [v for v in worker["spec"]["volumes"] if v["name"] == TOKEN_VOLUME]
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"audience": contract.PROGRESS_AUDIENCE, "expirationSeconds": 600, "path": "token"}
    trainer = worker["spec"]["containers"][0]
    assert {"name": TOKEN_VOLUME, "mountPath": contract.PROGRESS_TOKEN_DIR, "readOnly": True} in trainer[
        "volumeMounts"
    ]
    assert f"{contract.PROGRESS_TOKEN_DIR}/token" == contract.PROGRESS_TOKEN_FILE_PATH
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert (env[contract.PROGRESS_URL], env[contract.PROGRESS_TOKEN_FILE]) == (
        URL,
        contract.PROGRESS_TOKEN_FILE_PATH,
    )
    assert worker["spec"]["automountServiceAccountToken"] is False, (
        "no API token, only the audience-bound one"
    )
    # A projected token needs a named account: without the ServiceAccount admission plugin (which would
    # default it) the apiserver refuses the pod ("must not be specified when serviceAccountName is not set").
    assert worker["spec"]["serviceAccountName"] == "default"


def test_with_a_progress_url_a_named_service_account_is_kept() -> None:
    job = make_job(template={"spec": {"serviceAccountName": "trainer"}})
    worker = desired_worker(job, 0, 0, progress_url=URL)
    assert worker["spec"]["serviceAccountName"] == "trainer"


def test_without_a_progress_url_the_pod_is_unchanged() -> None:
    job = make_job()
    worker = desired_worker(job, 0, 0)
    assert TOKEN_VOLUME not in {v["name"] for v in worker["spec"].get("volumes", [])}
    assert "serviceAccountName" not in worker["spec"]
    names = {e["name"] for e in worker["spec"]["containers"][0]["env"]}
    assert not names & {contract.PROGRESS_URL, contract.PROGRESS_TOKEN_FILE}


def test_plan_passes_the_progress_url_to_new_workers() -> None:
    job = make_job()
    first = plan(job, None, [], None, T0, progress_url=URL)
    bodies = [a.body for a in first.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    assert len(bodies) == 2
    for body in bodies:
        env = {e["name"]: e["value"] for e in body["spec"]["containers"][0]["env"]}
        assert env[contract.PROGRESS_URL] == URL


def test_progress_flags_go_together_and_reach_the_reconciler(capsys: pytest.CaptureFixture[str]) -> None:
    parse = build_parser().parse_args
    assert progress_options(parse(["run"])) == {"progress_bind": None, "progress_url": None}
    both = parse(["run", "--progress-bind-address=:8082", f"--progress-url={URL}/"])
    assert progress_options(both) == {"progress_bind": Address("127.0.0.1", 8082), "progress_url": URL}
    for one in (["--progress-bind-address=0.0.0.0:8082"], [f"--progress-url={URL}"]):
        with pytest.raises(ValueError, match="set both or neither"):
            progress_options(parse(["run", *one]))
        assert run(parse(["run", *one])) == 2
    assert "--progress-bind-address and --progress-url go together" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["run", "--progress-bind-address=:8082", "--progress-url=pyroclast-progress:8082"])
    assert "--progress-url: 'pyroclast-progress:8082' is not an http(s) URL" in capsys.readouterr().err


def test_progress_tls_flags_name_the_secret_files_and_need_an_https_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parse = build_parser().parse_args
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("cert")
    key.write_text("key")
    tls = [f"--progress-tls-cert-file={cert}", f"--progress-tls-key-file={key}"]
    https = "https://pyroclast-progress.pyroclast-system.svc:8443"
    bind = "--progress-bind-address=0.0.0.0:8443"
    served = progress_options(parse(["run", bind, f"--progress-url={https}", *tls]))
    assert served["progress_bind"] == Address("0.0.0.0", 8443, Tls(str(cert), str(key)))
    gone = f"--progress-tls-key-file={tmp_path}/gone"
    refusals = [
        ([bind, f"--progress-url={https}", tls[0]], "go together: set both or neither"),
        (tls, "needs --progress-bind-address and --progress-url"),
        ([bind, f"--progress-url={URL}", *tls], "must be https://"),
        (
            [bind, f"--progress-url={https}", tls[0], gone],
            f"--progress-tls-key-file: cannot read {tmp_path}/gone",
        ),
    ]
    for argv, message in refusals:
        with pytest.raises(ValueError, match=re.escape(message)):
            progress_options(parse(["run", *argv]))
        assert run(parse(["run", *argv])) == 2
        assert message in capsys.readouterr().err


def test_the_answer_carries_cost_currency_goodput_and_lost_seconds_by_cause() -> None:
    status = TorchJobStatus(
        usage=Usage(gpu_seconds=7200.0, cost=12.5, currency="EUR", updated_time=T0),
        goodput=Goodput(
            held_seconds=1000.0,
            productive_seconds=700.0,
            lost=LostTime(
                queued_seconds=100.0,
                restarting_seconds=50.0,
                preempted_seconds=120.0,
                recomputed_seconds=30.0,
            ),
            percent=70.0,
            updated_time=T0,
        ),
    )
    assert accounting_of(status) == {
        "cost": 12.5,
        "currency": "EUR",
        "goodputPercent": 70.0,
        "lostSeconds": {"queued": 100.0, "restarting": 50.0, "preempted": 120.0, "recomputed": 30.0},
    }
    assert set(contract.ProgressAccounting.__annotations__) == {
        "cost",
        "currency",
        "goodputPercent",
        "lostSeconds",
    }


def test_the_answer_leaves_out_what_the_operator_does_not_know() -> None:
    assert accounting_of(TorchJobStatus()) is None, "no usage or goodput yet: no accounting at all"
    no_rates = TorchJobStatus(usage=Usage(cpu_seconds=60.0), goodput=Goodput())
    assert accounting_of(no_rates) == {
        "lostSeconds": {"queued": 0.0, "restarting": 0.0, "preempted": 0.0, "recomputed": 0.0}
    }, "no cost without rates, no percent before any held time"
    usage_only = TorchJobStatus(usage=Usage(cost=0.0))
    assert accounting_of(usage_only) == {"cost": 0.0}, "a cost of 0 is known; a currency-less cost has none"
