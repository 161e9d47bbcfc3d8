"""`pyroclast run`: the operator process (TorchJob controller on the runtime's manager)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import anyio

from controller.manager import Manager
from controller.torchjob.reconciler import TorchJobReconciler

log = logging.getLogger("pyroclast.operator")

LEADER_ELECTION_ID = "pyroclast-operator"


def add_parser(subparsers: Any) -> None:
    """Register the `run` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run the operator", description="Run the TorchJob operator until SIGTERM/SIGINT."
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig path (default: KUBECONFIG or in-cluster)"
    )
    parser.add_argument("--namespace", default=None, help="watch one namespace only (default: all)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent reconciles (default 4)")
    parser.add_argument("--metrics-bind-address", default="127.0.0.1:8080", help='"0" disables metrics')
    parser.add_argument("--health-probe-bind-address", default="127.0.0.1:8081", help='"0" disables probes')
    parser.add_argument("--leader-elect", action="store_true", help="run only while holding the leader Lease")
    parser.add_argument("--leader-election-namespace", default=None, help="namespace of the leader Lease")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(func=run)


async def serve(args: argparse.Namespace) -> None:
    """Connect, register the TorchJob controller and run until stopped."""
    manager = await Manager.connect(
        args.kubeconfig,
        namespace=args.namespace,
        leader_election=args.leader_elect,
        leader_election_id=LEADER_ELECTION_ID if args.leader_elect else None,
        leader_election_namespace=args.leader_election_namespace,
        metrics_bind_address=args.metrics_bind_address,
        health_probe_bind_address=args.health_probe_bind_address,
        handle_signals=True,
    )
    manager.add(TorchJobReconciler(manager).controller(workers=args.workers))
    log.info("pyroclast operator starting (namespace=%s, workers=%d)", args.namespace or "*", args.workers)
    await manager.run()


def run(args: argparse.Namespace) -> int:
    """Entry point of `pyroclast run`; returns the exit code."""
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    anyio.run(serve, args)
    return 0
