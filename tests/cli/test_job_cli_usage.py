"""`pyroclast job` without a cluster: usage errors first (exit 2), documented exit codes, and the message
and exit code of every API error a person can meet."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.queue import QueueState
from controller.runtime.errors import TransportError, error_from_status
from pyroclast.cli import main
from pyroclast.errors import explain
from pyroclast.jobs import NoPriorityClassError, QueueClosedError, UnknownQueueError


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_usage_errors_exit_2_before_connecting(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = ("--kubeconfig", str(tmp_path / "nope"))
    code, err = run(capsys, "job", "submit", "ft", "--image", "i", *missing)
    assert code == 2
    assert "the command is missing: put what torchrun runs after --, e.g. -- -m workloads.train" in err
    code, err = run(capsys, "job", "submit", "ft", "--image", "i", "--cpu", "x", *missing, "--", "t.py")
    assert code == 2
    assert "--cpu: 'x' is not a quantity" in err
    job = tmp_path / "job.yaml"
    job.write_text("kind: TorchJob\nmetadata: {name: a}\nspec: {image: i, command: [t.py]}\n")
    code, err = run(capsys, "job", "submit", "-f", str(job), "--queue", "q", *missing)
    assert code == 2
    assert "give either -f FILE or a NAME with flags, not both" in err
    code, err = run(capsys, "job", "submit", "-f", str(tmp_path / "absent.yaml"), *missing)
    assert code == 2
    assert "No such file or directory" in err
    # Valid input gets as far as the credentials, which are missing: exit 1 with the fix.
    code, err = run(capsys, "job", "submit", "-f", str(job), *missing)
    assert code == 1
    assert "Pass --kubeconfig FILE" in err


def test_a_command_after_dashes_only_where_one_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["job", "list", "--", "t.py"])
    assert exc.value.code == 2
    assert "unexpected arguments after --: t.py" in capsys.readouterr().err


def test_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["job", "wait", "--help"])
    out = capsys.readouterr().out
    for line in (
        "0  done",
        "1  failed: cluster unreachable",
        "2  usage",
        "3  queue not found",
        "4  conflict or refused",
        "5  `job wait`: the job failed",
        "6  timed out",
    ):
        assert line in out


def api(code: int, reason: str, message: str, **details: str) -> Exception:
    body = {"kind": "Status", "code": code, "reason": reason, "message": message, "details": details}
    return error_from_status(code, body)


NO_RESOURCE = "the server could not find the requested resource"


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (TransportError("ConnectError: refused"), 1, "cluster unreachable: ConnectError: refused"),
        (api(401, "Unauthorized", "Unauthorized"), 1, "rejected the credentials"),
        (api(403, "Forbidden", 'User "bob" cannot create resource "torchjobs"'), 1, "not allowed by RBAC"),
        (api(404, "NotFound", "x", kind="namespaces", name="x"), 3, "namespace x does not exist"),
        (api(404, "NotFound", NO_RESOURCE), 3, "is the CRD installed?"),
        (api(422, "Invalid", "spec.nodes.min: Invalid value"), 2, "refused the TorchJob: spec.nodes.min"),
        (api(400, "BadRequest", 'admission webhook "q" denied'), 4, "an admission webhook refused"),
        (api(409, "Conflict", "the object has been modified"), 4, "retry"),
        (api(500, "InternalError", "etcd down"), 1, "the apiserver answered 500"),
        (UnknownQueueError("team-a"), 3, "pyroclast queue create team-a"),
        (QueueClosedError("team-a", QueueState.CLOSING), 4, "queue team-a is Closing and admits no new jobs"),
        (NoPriorityClassError("high"), 3, "kubectl get priorityclasses"),
    ],
)
def test_every_error_has_a_fix_and_an_exit_code(error: Exception, code: int, words: str) -> None:
    explained = explain(error, noun="TorchJob")
    assert explained is not None
    assert explained[1] == code
    assert words in explained[0]


def test_bugs_are_not_explained_away() -> None:
    assert explain(KeyError("x"), noun="TorchJob") is None


def test_a_job_the_models_refuse_names_itself_and_the_fix() -> None:
    from pyroclast.jobs import JobModelError, _job  # pyright: ignore[reportPrivateUsage]

    with pytest.raises(JobModelError) as exc:
        _job({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"image": "i", "command": []}})
    assert "TorchJob ns/a does not match this client's API" in str(exc.value)
    assert explain(exc.value, noun="TorchJob") == (str(exc.value), 1)


def test_namespace_defaults_to_the_kubeconfig_contexts(tmp_path: Path) -> None:
    from pyroclast.cli_support import context_namespace

    first = tmp_path / "a.yaml"
    first.write_text(
        "current-context: research\n"
        "contexts:\n- {name: research, context: {cluster: c, namespace: team-a}}\n"
        "- {name: bare, context: {cluster: c}}\n"
    )
    second = tmp_path / "b.yaml"
    second.write_text("current-context: other\ncontexts:\n- {name: other, context: {namespace: team-b}}\n")
    env = {"KUBECONFIG": f"{first}:{second}", "HOME": str(tmp_path)}
    assert context_namespace(None, None, environ=env) == "team-a"  # the first current-context wins
    assert context_namespace(None, "other", environ=env) == "team-b"
    assert context_namespace(None, "bare", environ=env) == "default"
    assert context_namespace(second, None, environ=env) == "team-b"
    assert context_namespace(tmp_path / "absent", None, environ={}) == "default"
