"""Benchmark P4 on the rig: the operator's RSS with M TorchJobs listed from the real apiserver.

Run: ``python -m e2e.bench.bench_listed [--jobs 10000] [--json out.json]``. Starts the rig (watch cache on,
as in production; audit off), creates M suspended TorchJobs (``runPolicy.suspend``: no PodGroup, no pods),
then starts ``pyroclast run`` as its own process. Its TorchJob informer's first LIST is the one the operator
makes in production (pages of 500 at resourceVersion "", since the watch cache would answer "0" in one body
whatever the limit); the list's resourceVersion and page count are read from the operator's own log line.
Measured once every job is reconciled (each shows Suspended) and the operator is idle: RSS and peak
(VmHWM), against the RSS of the same operator started on an empty namespace, and the verdict RSS <= 250 MB.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from controller.runtime.objects import JsonObject
from controller.torchjob.kinds import TORCHJOBS
from e2e.bench.harness import new_namespace, start_operator, start_rig, stop_operator, wait_until
from e2e.bench.report import MIB, P4_LIMIT_MB
from e2e.bench.scale import clear_namespace, jobs_in_phase, ready, rss_mib, submit, wait_steady
from e2e.cluster import Cluster
from e2e.cluster.ports import HOST, free_port
from e2e.torchjobs import torchjob

TUNED = ("--workers", "16", "--kube-api-qps", "200", "--kube-api-burst", "400")
_LISTED = re.compile(
    r"listed (?P<items>\d+) torchjobs\.pyroclast\.dev at RV '(?P<rv>[^']*)' \((?P<pages>\d+) pages"
)


def suspended_job(i: int) -> JsonObject:
    """An 8-worker TorchJob that stays suspended: the operator lists, caches and reconciles it, creates
    nothing for it."""
    return torchjob(f"tj-{i:05d}", None, count=8, runPolicy={"suspend": True})


def first_list(log: str) -> tuple[int, str, int]:
    """(items, resourceVersion, pages) of the operator's first TorchJob LIST, from its log."""
    match = _LISTED.search(log)
    if match is None:
        raise ValueError("the operator logged no TorchJob list")
    return int(match["items"]), match["rv"], int(match["pages"])


def _operator(cluster: Cluster, log: Path, *extra: str) -> tuple[Any, int, int]:
    metrics, health = free_port(), free_port()
    proc = start_operator(
        cluster.kubeconfig, log, args=(*TUNED, *extra), metrics=f"{HOST}:{metrics}", health=f"{HOST}:{health}"
    )
    return proc, metrics, health


def measure(cluster: Cluster, jobs: int, timeout: float) -> JsonObject:
    """Create `jobs` suspended TorchJobs in a fresh namespace, start the operator, measure; the figures."""
    logs = cluster.workdir / "logs"
    empty = new_namespace(cluster, "bench-listed-idle")
    proc, _, health = _operator(cluster, logs / "bench-listed-idle.log", "--namespace", empty)
    try:
        wait_until("idle operator ready", lambda: ready(health), 120, 0.2)
        time.sleep(1.0)
        idle = rss_mib(proc.pid)
    finally:
        stop_operator(proc)
    cluster.api.delete(f"/api/v1/namespaces/{empty}")

    ns = new_namespace(cluster, "bench-listed")
    t0 = time.monotonic()
    submit(cluster, TORCHJOBS, ns, [suspended_job(i) for i in range(jobs)])
    created = time.monotonic() - t0
    log = logs / "bench-listed.log"
    start = log.stat().st_size if log.exists() else 0
    proc, metrics, health = _operator(cluster, log)
    try:
        t0 = time.monotonic()
        wait_until("operator ready", lambda: ready(health), timeout, 0.2)
        synced = time.monotonic() - t0
        wait_until(
            "every job Suspended",
            lambda: jobs_in_phase(cluster, ns, "torchjobs", "Suspended") == jobs,
            timeout,
            2.0,
        )
        wait_steady(metrics, jobs, timeout=timeout)
        steady = time.monotonic() - t0
        rss, peak = rss_mib(proc.pid), rss_mib(proc.pid, "VmHWM")
    finally:
        stop_operator(proc)
    with log.open("rb") as f:
        f.seek(start)
        items, rv, pages = first_list(f.read().decode(errors="replace"))
    clear_namespace(cluster, ns, [f"/apis/pyroclast.dev/v1alpha1/namespaces/{ns}/torchjobs"])
    return {
        "jobs": jobs,
        "watch_cache": cluster.watch_cache,
        "created_seconds": round(created, 1),
        "synced_seconds": round(synced, 2),
        "steady_seconds": round(steady, 2),
        "first_list_items": items,
        "first_list_rv": rv,
        "first_list_pages": pages,
        "idle_rss_mib": round(idle, 1),
        "rss_mib": round(rss, 1),
        "peak_rss_mib": round(peak, 1),
        "bytes_per_job": round((rss - idle) * 2**20 / max(1, jobs)),
        "passed": rss * MIB <= P4_LIMIT_MB,
    }


def report(figures: JsonObject) -> str:
    """The lines to print."""
    verdict = "PASS" if figures["passed"] else "FAIL"
    cache = "on" if figures["watch_cache"] else "off"
    return "\n".join(
        [
            f"bench_listed: {figures['jobs']} suspended TorchJobs created in {figures['created_seconds']} s; "
            f"first LIST at RV {figures['first_list_rv']!r}: {figures['first_list_items']} items in "
            f"{figures['first_list_pages']} page(s) (watch cache {cache})",
            f"operator: ready {figures['synced_seconds']} s, steady {figures['steady_seconds']} s; "
            f"RSS MiB idle {figures['idle_rss_mib']}, steady {figures['rss_mib']}, "
            f"peak {figures['peak_rss_mib']}; "
            f"{figures['bytes_per_job']} B per job above idle",
            f"P4 (rig, listed): RSS {figures['rss_mib'] * MIB:.1f} MB <= {P4_LIMIT_MB:.0f} MB: {verdict}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=1200.0, help="per stage, seconds")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    cluster = start_rig(audit=False)
    try:
        figures = measure(cluster, args.jobs, args.timeout)
    finally:
        cluster.stop()
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    if not figures["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
