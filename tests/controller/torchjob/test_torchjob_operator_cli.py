"""`pyroclast run`: the verb is registered and its options reach the manager."""

from __future__ import annotations

from pyroclast.cli import build_parser
from pyroclast.operator import run


def test_run_verb_parses_operator_options() -> None:
    args = build_parser().parse_args(
        ["run", "--kubeconfig", "/tmp/kc", "--namespace", "ml", "--workers", "8", "--leader-elect"]
    )
    assert args.func is run
    assert args.kubeconfig == "/tmp/kc"
    assert args.namespace == "ml"
    assert args.workers == 8
    assert args.leader_elect is True
    assert args.metrics_bind_address == "127.0.0.1:8080"


def test_run_defaults_watch_all_namespaces_without_leader_election() -> None:
    args = build_parser().parse_args(["run"])
    assert args.namespace is None
    assert args.leader_elect is False
    assert args.workers == 4
