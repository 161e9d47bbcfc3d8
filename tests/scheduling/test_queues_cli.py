"""`pyroclast queue` exit codes that need no cluster: usage errors and missing credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyroclast.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["queue", *argv])
    return code, capsys.readouterr().err


def test_bad_flags_exit_2_before_connecting(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.kubeconfig")
    code, err = run(capsys, "create", "q", "--capability", "gpu", "--kubeconfig", missing)
    assert code == 2
    assert "--capability: 'gpu' is not NAME=QUANTITY" in err
    code, err = run(capsys, "create", "q", "-w", "70000", "--kubeconfig", missing)
    assert code == 2
    assert "spec.weight" in err
    code, err = run(capsys, "update", "q", "--kubeconfig", missing)
    assert code == 2
    assert "nothing to update" in err


def test_missing_credentials_exit_1_with_the_fix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.kubeconfig")
    code, err = run(capsys, "list", "--kubeconfig", missing)
    assert code == 1
    assert f"cannot load cluster credentials from {missing}" in err
    assert "--kubeconfig FILE" in err


def test_unknown_subcommand_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["queue", "frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["queue", "delete", "--help"])
    out = capsys.readouterr().out
    assert "3  queue not found" in out
    assert "4  conflict or refused" in out


def test_unreachable_cluster_exits_1_and_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\n'
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    code, err = run(capsys, "get", "q", "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert "cluster unreachable" in err
    assert "--kubeconfig" in err
