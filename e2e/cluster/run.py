"""`python -m e2e.cluster run|up`: the local cluster in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from e2e.cluster.binaries import BinaryNotFoundError
from e2e.cluster.cluster import Cluster, install_signal_handlers
from e2e.cluster.modules import ModuleNotFoundInCacheError
from e2e.cluster.operator import apply_sample_job, install_crd, operator_component
from e2e.cluster.process import Component, ComponentStartError

log = logging.getLogger("e2e.cluster")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KUBECONFIG = REPO_ROOT / ".pyroclast" / "kubeconfig"

RunStep = Callable[[Cluster], object]


def add_gpu_nodes(cluster: Cluster) -> None:
    """Four fake GPU nodes for scale work: 8 GPUs, 96 CPUs and 1Ti memory each (kwok; nothing runs)."""
    names = cluster.create_nodes(4, cpu="96", memory="1Ti", gpus=8, prefix="gpu")
    print(f"nodes: {', '.join(names)}", flush=True)


def add_process_nodes(cluster: Cluster) -> None:
    """Two process nodes, where the sample job's workers really run (needs the pod network: root)."""
    if cluster.pod_host is None:
        print(
            f"no process nodes ({cluster.pod_network_unavailable}): the sample job runs on the fake GPU "
            "nodes and does not really train",
            flush=True,
        )
        return
    names = cluster.create_process_nodes(2, cpu="4", memory="16Gi", prefix="proc")
    print(f"process nodes: {', '.join(names)} (pods run as local processes on bridge {cluster.pod_host})")


# Processes `run` starts beside the cluster (stopped before it).
_extra: list[Component] = []


def start_operator(cluster: Cluster) -> None:
    """The operator as its own process, like a Deployment would run it."""
    component = operator_component(cluster)
    _extra.append(component)
    component.start()


# Steps `run` performs once the cluster is ready, in order.
RUN_STEPS: list[RunStep] = [add_gpu_nodes, add_process_nodes, install_crd, start_operator, apply_sample_job]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__)
    parser.add_argument(
        "command", choices=("run", "up"), help="run: cluster + sample nodes (+ steps); up: bare"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG, help="where to copy the kubeconfig"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="run directory (default: a fresh temp dir)"
    )
    parser.add_argument("--exit-when-ready", action="store_true", help="stop right after start (for timing)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_signal_handlers()
    cluster = Cluster(args.workdir)
    t0 = time.monotonic()
    try:
        cluster.start()
        ready = time.monotonic() - t0
        steps = RUN_STEPS if args.command == "run" else []
        for step in steps:
            step(cluster)
        total = time.monotonic() - t0
        args.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cluster.kubeconfig, args.kubeconfig)
        args.kubeconfig.chmod(0o600)
        print(
            f"cluster ready in {ready:.1f} s ({'; '.join(f'{k} {v}s' for k, v in cluster.timings.items())})"
        )
        if steps:
            print(f"run steps done; {total:.1f} s since start")
        print(f"logs: {cluster.workdir / 'logs'}")
        bin_dir = args.kubeconfig.parent / "bin"
        bin_dir.mkdir(exist_ok=True)
        kubectl = bin_dir / "kubectl"
        kubectl.unlink(missing_ok=True)
        kubectl.symlink_to(cluster.kubectl_binary)
        print(f"kubectl: {kubectl} -> {cluster.kubectl_binary}")
        print(f"export KUBECONFIG={args.kubeconfig} PATH={bin_dir}:$PATH", flush=True)
        if args.exit_when_ready:
            return 0
        print("Ctrl-C (or SIGTERM) stops everything.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1.0):
            for name in cluster.component_names():
                if cluster.pid(name) is None:
                    print(f"{name} exited; last log lines:\n{cluster.log_tail(name, 20)}", file=sys.stderr)
                    return 1
            for component in _extra:
                if not component.running:
                    print(f"{component.name} exited; last log lines:\n{component.tail(20)}", file=sys.stderr)
                    return 1
        return 0
    except (BinaryNotFoundError, ModuleNotFoundInCacheError, ComponentStartError, RuntimeError) as exc:
        print(f"cluster failed to start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        print("stopping cluster ...", file=sys.stderr, flush=True)
        for component in reversed(_extra):
            component.stop()
        cluster.stop()
