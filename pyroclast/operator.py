"""`pyroclast run`: the operator process (TorchJob controller on the runtime's manager).

Every flag is documented in the README ("Operator flags"); the Helm chart and the kustomize base pass them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio

from api.duration import duration_seconds
from controller.runtime.httpserver import Tls, parse_address
from controller.runtime.leader import JITTER_FACTOR, LeaderElectionLost
from controller.runtime.leaderlabel import LeaderLabel, OwnPod
from controller.runtime.manager import CacheSyncTimeout, Manager, default_namespace
from controller.torchjob.progress_endpoint import Address
from controller.torchjob.rates import load_rates
from controller.torchjob.reconciler import TorchJobReconciler
from pyroclast import logs

log = logging.getLogger("pyroclast.operator")

LEADER_ELECTION_ID = "pyroclast-operator"
# On the leader's pod only; the progress Service selects it, since only the leader serves progress.
LEADER_LABEL = "pyroclast.dev/leader"
DEFAULT_QPS = 50.0
DEFAULT_BURST = 100

T = TypeVar("T")


def _checked(parse: Callable[[str], T], what: str) -> Callable[[str], T]:
    """An argparse type whose error names what was expected (argparse adds the flag's name)."""

    def convert(value: str) -> T:
        try:
            return parse(value)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what} ({err})") from None

    convert.__name__ = what
    return convert


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _duration(value: str) -> float:
    seconds = float(duration_seconds(value))
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


def _address(value: str) -> str:
    parse_address(value)  # raises ValueError on a bad port
    return value


def _http_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or rest.startswith("/"):
        raise ValueError("expected http://HOST[:PORT][/PATH]")
    return value.rstrip("/")


def add_parser(subparsers: Any) -> None:
    """Register the `run` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the operator", description="Run the TorchJob operator until SIGTERM/SIGINT."
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        default=None,
        help="kubeconfig path (default: KUBECONFIG, else in-cluster)",
    )
    parser.add_argument(
        "--namespace", metavar="NS", default=None, help="watch this namespace only (default: all namespaces)"
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=_checked(_positive_int, "a positive integer"),
        default=4,
        help="TorchJobs reconciled concurrently (default 4)",
    )
    parser.add_argument(
        "--rates",
        metavar="FILE",
        type=Path,
        default=None,
        help="prices per GPU-, CPU- and memory-GiB-hour (YAML: currency, perHour, queues) that jobs' usage "
        "is costed at in status.usage.cost (default: no cost)",
    )
    api = parser.add_argument_group("API client")
    api.add_argument(
        "--kube-api-qps",
        metavar="QPS",
        type=_checked(_non_negative, "a number >= 0"),
        default=DEFAULT_QPS,
        help=f"steady requests per second to the apiserver; 0 disables throttling (default {DEFAULT_QPS:g})",
    )
    api.add_argument(
        "--kube-api-burst",
        metavar="N",
        type=_checked(_positive_int, "a positive integer"),
        default=DEFAULT_BURST,
        help=f"requests allowed above the QPS in a burst (default {DEFAULT_BURST})",
    )
    le = parser.add_argument_group("leader election")
    le.add_argument("--leader-elect", action="store_true", help="run only while holding the leader Lease")
    le.add_argument(
        "--leader-election-id", metavar="NAME", default=LEADER_ELECTION_ID, help="name of the Lease"
    )
    le.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        default=None,
        help="namespace of the Lease (default: the service account's, else POD_NAMESPACE, else default)",
    )
    duration = _checked(_duration, "a duration such as 15s")
    le.add_argument(
        "--leader-elect-lease-duration", metavar="DURATION", type=duration, default=15.0, help="default 15s"
    )
    le.add_argument(
        "--leader-elect-renew-deadline", metavar="DURATION", type=duration, default=10.0, help="default 10s"
    )
    le.add_argument(
        "--leader-elect-retry-period", metavar="DURATION", type=duration, default=2.0, help="default 2s"
    )
    le.add_argument(
        "--leader-elect-release-on-cancel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="free the Lease on a graceful stop, once the controllers stopped, so a standby takes over "
        "at once (default on: the process exits right after)",
    )
    serving = parser.add_argument_group("endpoints")
    address = _checked(_address, "HOST:PORT or 0")
    serving.add_argument(
        "--metrics-bind-address",
        metavar="ADDR",
        type=address,
        default="127.0.0.1:8080",
        help='"0" disables /metrics',
    )
    serving.add_argument(
        "--health-probe-bind-address",
        metavar="ADDR",
        type=address,
        default="127.0.0.1:8081",
        help='/healthz and /readyz; "0" disables',
    )
    serving.add_argument(
        "--progress-bind-address",
        metavar="ADDR",
        type=address,
        default="0",
        help='POST /v1/progress for live reports from workers; "0" (default) disables; needs --progress-url',
    )
    serving.add_argument(
        "--progress-url",
        metavar="URL",
        type=_checked(_http_url, "an http(s) URL"),
        default=None,
        help="the endpoint as workers dial it, e.g. https://pyroclast-progress.pyroclast-system.svc:8443",
    )
    serving.add_argument(
        "--progress-tls-cert-file",
        metavar="PATH",
        default=None,
        help="serve the progress endpoint over TLS with this PEM certificate chain (e.g. a mounted "
        "kubernetes.io/tls Secret's tls.crt); needs --progress-tls-key-file and an https --progress-url",
    )
    serving.add_argument(
        "--progress-tls-key-file",
        metavar="PATH",
        default=None,
        help="the PEM private key of that certificate",
    )
    telemetry = parser.add_argument_group("logs and traces")
    telemetry.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=_checked(logs.parse_level, "a log level"),
        default=logging.INFO,
        help="debug, info, warning or error (default info)",
    )
    telemetry.add_argument("--log-format", choices=logs.FORMATS, default="text", help="default text")
    telemetry.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        default=None,
        help="OTLP/HTTP collector, e.g. http://otel-collector:4318; sets OTEL_EXPORTER_OTLP_ENDPOINT "
        "(the other OTEL_* variables apply as usual)",
    )
    parser.set_defaults(func=run)


def manager_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Manager options the flags ask for; ValueError naming the flags when they contradict."""
    lease, renew, retry = (
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    )
    if not lease > renew:
        raise ValueError("--leader-elect-lease-duration must be longer than --leader-elect-renew-deadline")
    if not renew > JITTER_FACTOR * retry:
        raise ValueError(
            f"--leader-elect-renew-deadline must be longer than {JITTER_FACTOR} x --leader-elect-retry-period"
        )
    return {
        "namespace": args.namespace,
        "qps": args.kube_api_qps,
        "burst": args.kube_api_burst,
        "leader_election": args.leader_elect,
        "leader_election_id": args.leader_election_id,
        "leader_election_namespace": args.leader_election_namespace,
        "lease_duration": lease,
        "renew_deadline": renew,
        "retry_period": retry,
        "leader_election_release_on_cancel": args.leader_elect_release_on_cancel,
        "metrics_bind_address": args.metrics_bind_address,
        "health_probe_bind_address": args.health_probe_bind_address,
        "handle_signals": True,
    }


def progress_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reconciler's live-progress options; ValueError naming the flags when only one is set."""
    bind = parse_address(args.progress_bind_address)
    if (bind is None) != (args.progress_url is None):
        raise ValueError("--progress-bind-address and --progress-url go together: set both or neither")
    cert, key = args.progress_tls_cert_file, args.progress_tls_key_file
    if (cert is None) != (key is None):
        raise ValueError(
            "--progress-tls-cert-file and --progress-tls-key-file go together: set both or neither"
        )
    tls = Tls(cert, key) if cert is not None and key is not None else None
    if tls is not None:
        if bind is None:
            raise ValueError("--progress-tls-cert-file needs --progress-bind-address and --progress-url")
        if not str(args.progress_url).startswith("https://"):
            raise ValueError("--progress-url must be https:// when the endpoint serves TLS")
        for flag, path in (
            ("--progress-tls-cert-file", tls.cert_file),
            ("--progress-tls-key-file", tls.key_file),
        ):
            if not os.access(path, os.R_OK):
                raise ValueError(f"{flag}: cannot read {path} (mount the TLS Secret there)")
    return {"progress_bind": Address(*bind, tls) if bind else None, "progress_url": args.progress_url}


def label_leader_pod(manager: Manager, env: Mapping[str, str]) -> LeaderLabel | None:
    """With leader election, the leader labels its own pod ``LEADER_LABEL: "true"`` (``POD_NAME`` from the
    downward API), so the progress Service routes only to the replica that serves progress."""
    if manager.elector is None:
        return None
    pod = OwnPod.from_env(env, default_namespace)
    if pod is None:
        log.info(
            "POD_NAME is not set (not running in a pod): the leader's pod is not labelled",
            extra={"label": LEADER_LABEL},
        )
        return None
    label = LeaderLabel(manager.client, pod, LEADER_LABEL)
    manager.add_runnable(label.run, need_leader_election=False)
    manager.on_started_leading(label.started_leading)
    return label


async def serve(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Connect, register the TorchJob controller and run until stopped."""
    manager = await Manager.connect(args.kubeconfig, **options)
    rates = load_rates(args.rates) if args.rates is not None else None
    reconciler = TorchJobReconciler(manager, rates=rates, **progress_options(args))
    manager.add(reconciler.controller(workers=args.workers))
    label_leader_pod(manager, os.environ)
    log.info(
        "pyroclast operator starting",
        extra={
            "namespace": args.namespace or "*",
            "workers": args.workers,
            "qps": args.kube_api_qps,
            "burst": args.kube_api_burst,
            "leader_elect": args.leader_elect,
            "server": manager.client.transport.host,
            "progress_url": args.progress_url or "off",
        },
    )
    await manager.run()


def run(args: argparse.Namespace) -> int:
    """Entry point of `pyroclast run`; returns the exit code (2: contradictory flags)."""
    try:
        options = manager_options(args)
        progress_options(args)
        if args.rates is not None:
            load_rates(args.rates)
    except ValueError as err:
        print(f"pyroclast run: error: {err}", file=sys.stderr)
        return 2
    logs.configure(args.log_level, args.log_format)
    if args.otlp_endpoint:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp_endpoint
    try:
        anyio.run(serve, args, options)
    except (LeaderElectionLost, CacheSyncTimeout) as err:
        log.error("operator stopped: %s", err)
        return 1
    return 0
