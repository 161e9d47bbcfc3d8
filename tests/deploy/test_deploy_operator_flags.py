"""`pyroclast run` flags: each reaches the manager, bad values are refused naming the flag, logs are JSON."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from pyroclast import logs
from pyroclast.cli import build_parser
from pyroclast.operator import manager_options, run


def _options(*argv: str) -> dict[str, object]:
    return manager_options(build_parser().parse_args(["run", *argv]))


def test_flags_reach_the_manager_options() -> None:
    options = _options(
        "--namespace=ml",
        "--kube-api-qps=20",
        "--kube-api-burst=40",
        "--leader-elect",
        "--leader-election-id=ops",
        "--leader-election-namespace=ops-system",
        "--leader-elect-lease-duration=30s",
        "--leader-elect-renew-deadline=20s",
        "--leader-elect-retry-period=4s",
        "--no-leader-elect-release-on-cancel",
        "--metrics-bind-address=0.0.0.0:9090",
        "--health-probe-bind-address=:9091",
    )
    assert options == {
        "namespace": "ml",
        "qps": 20.0,
        "burst": 40,
        "leader_election": True,
        "leader_election_id": "ops",
        "leader_election_namespace": "ops-system",
        "lease_duration": 30.0,
        "renew_deadline": 20.0,
        "retry_period": 4.0,
        "leader_election_release_on_cancel": False,
        "metrics_bind_address": "0.0.0.0:9090",
        "health_probe_bind_address": ":9091",
        "handle_signals": True,
    }


def test_defaults_are_client_go_timings_and_a_50_qps_bucket() -> None:
    args = build_parser().parse_args(["run"])
    options = manager_options(args)
    assert (options["lease_duration"], options["renew_deadline"], options["retry_period"]) == (
        15.0,
        10.0,
        2.0,
    )
    assert (options["qps"], options["burst"]) == (50.0, 100)
    assert options["leader_election_release_on_cancel"] is True  # the process exits when the manager stops
    assert options["leader_election"] is False  # no Lease without --leader-elect ...
    assert options["leader_election_id"] == "pyroclast-operator"  # ... the id only names the leader gauge
    assert (args.log_level, args.log_format, args.otlp_endpoint) == (logging.INFO, "text", None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers=0"], "argument --workers: '0' is not a positive integer"),
        (["--kube-api-qps=-1"], "argument --kube-api-qps: '-1' is not a number >= 0"),
        (
            ["--leader-elect-lease-duration=15"],
            "argument --leader-elect-lease-duration: '15' is not a duration",
        ),
        (
            ["--metrics-bind-address=localhost:http"],
            "argument --metrics-bind-address: 'localhost:http' is not",
        ),
        (["--log-level=loud"], "argument --log-level: 'loud' is not a log level"),
        (["--log-format=xml"], "argument --log-format: invalid choice: 'xml'"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--leader-elect-renew-deadline=15s"], "--leader-elect-lease-duration must be longer than"),
        (["--leader-elect-retry-period=9s"], "--leader-elect-renew-deadline must be longer than 1.2 x"),
    ],
)
def test_contradictory_leader_timings_exit_2_before_connecting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(build_parser().parse_args(["run", *argv])) == 2
    assert message in capsys.readouterr().err


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "pyroclast.test", "levelname": "INFO", "levelno": 20, "msg": msg})
    record.__dict__.update(extra)
    return record


def test_json_logs_carry_the_call_fields() -> None:
    entry = json.loads(logs.JsonFormatter().format(_record("starting %s", workers=4, namespace="*")))
    assert entry["msg"] == "starting %s"
    assert (entry["level"], entry["logger"], entry["workers"], entry["namespace"]) == (
        "info",
        "pyroclast.test",
        4,
        "*",
    )
    assert entry["ts"].endswith("+00:00")


def test_text_logs_append_the_call_fields() -> None:
    line = logs.TextFormatter().format(_record("starting", workers=4))
    assert line.endswith("INFO pyroclast.test starting workers=4")


def test_configure_routes_the_root_logger_in_the_chosen_format(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        logs.configure(logging.WARNING, "json")
        logging.getLogger("pyroclast.x").info("hidden")
        logging.getLogger("pyroclast.x").warning("shown", extra={"job": "a/b"})
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["job"] == "a/b"
    with pytest.raises(ValueError, match="use one of text, json"):
        logs.configure(logging.INFO, "xml")


@pytest.mark.parametrize(
    ("level", "http_level"), [(logging.INFO, logging.WARNING), (logging.DEBUG, logging.DEBUG)]
)
def test_http_libraries_log_each_request_only_at_debug(
    monkeypatch: pytest.MonkeyPatch, level: int, http_level: int
) -> None:
    """httpx logs every request line at info: at the default level the operator's own lines are what shows."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in logs.CHATTY})
    try:
        logs.configure(level, "text")
        assert {logging.getLogger(n).level for n in logs.CHATTY} == {http_level}
        logging.getLogger("httpx").info('HTTP Request: GET https://127.0.0.1:6443/api "HTTP/1.1 200 OK"')
        logging.getLogger("pyroclast.x").info("reconciled")
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name, old in saved[2].items():
            logging.getLogger(name).setLevel(old)
    shown = stream.getvalue()
    assert "reconciled" in shown
    assert ("HTTP Request" in shown) is (level == logging.DEBUG)


def test_a_bad_rates_file_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rates = tmp_path / "rates.yaml"
    rates.write_text("perHour: {gpu: -1}\n")
    assert run(build_parser().parse_args(["run", "--rates", str(rates)])) == 2
    err = capsys.readouterr().err
    assert "--rates" in err
    assert "perHour.gpu" in err
