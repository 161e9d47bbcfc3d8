"""Benchmark: API writes per TorchJob on the happy path, counted by the apiserver's audit log.

Run: ``python -m e2e.bench.bench_writes [--jobs 5] [--workers 4]``. Starts the local rig with the write audit
on (``Cluster(audit=True)``), runs the real operator (``pyroclast run``) as a process, submits M jobs of N
workers whose pods kwok succeeds after 3 s, waits until every job Succeeded and its PodGroup is gone, and
prints the operator's writes by verb and resource per job against the issue's bar of N + 4 (Events apart).

Prints the figures and the verdict (N + 4 per job, N + 5 for the namespace's first job, whose reconcile also
creates the shared Service); exits 1 when a job is over its budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from controller.torchjob.service import WORKERS_SERVICE
from e2e.bench.audit import Write, belongs_to, by_kind, log_size, read_writes
from e2e.bench.harness import (
    OPERATOR_AGENT,
    job,
    kubectl_json,
    new_namespace,
    start_operator,
    start_rig,
    stop_operator,
    wait_until,
)
from e2e.cluster.pool import NodePool


def operator_writes(writes: list[Write], namespace: str) -> list[Write]:
    """The operator's writes in `namespace` (the benchmark's own TorchJob creates left out)."""
    return [
        w
        for w in writes
        if w.namespace == namespace
        and w.user_agent.startswith(OPERATOR_AGENT)
        and not (w.verb == "create" and w.resource == "torchjobs")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5, help="jobs M (default 5)")
    parser.add_argument("--workers", type=int, default=4, help="workers N per job (default 4)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    m, n = args.jobs, args.workers
    figures: dict[str, object] = {}

    cluster = start_rig()
    assert cluster.audit_log is not None
    try:
        pool = NodePool(cluster)
        pool(max(2, (m * n + 7) // 8), cpu="8")
        namespace = new_namespace(cluster, "bench-writes")
        offset = log_size(cluster.audit_log)
        proc = start_operator(cluster.kubeconfig, cluster.workdir / "logs" / "bench-operator.log")
        t0 = time.monotonic()
        try:
            names = [f"w-{i:03d}" for i in range(m)]
            for name in names:
                cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_yaml(job(name, pool, workers=n)))

            def done() -> bool:
                jobs = kubectl_json(cluster, "torchjobs", "-n", namespace)["items"]
                pgs = kubectl_json(cluster, "podgroups", "-n", namespace)["items"]
                phases = [(j.get("status") or {}).get("phase") for j in jobs]
                return len(jobs) == m and all(p == "Succeeded" for p in phases) and not pgs

            wait_until("every job Succeeded, PodGroups gone", done, 180)
            elapsed = time.monotonic() - t0
            time.sleep(4.0)  # any trailing write (a held-back status) lands
        finally:
            stop_operator(proc)
        writes = operator_writes(list(read_writes(cluster.audit_log, offset)), namespace)
        figures = report(writes, names, n, elapsed)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=1))
        pool.delete_all()
    finally:
        cluster.stop()
    if not figures["passed"]:
        sys.exit(1)


def _yaml(obj: object) -> str:
    import json

    return json.dumps(obj)  # kubectl reads JSON as YAML


def attribute(writes: list[Write], jobs: list[str]) -> Counter[str]:
    """Writes per job: those naming the job or its objects, and the namespace's shared Service create,
    which the first job's reconcile makes (jobs are submitted one after another)."""
    per_job = Counter({job: sum(1 for w in writes if belongs_to(w, job)) for job in jobs})
    per_job[jobs[0]] += sum(1 for w in writes if w.resource == "services" and w.name == WORKERS_SERVICE)
    return per_job


def report(writes: list[Write], jobs: list[str], n: int, elapsed: float) -> dict[str, object]:
    """Print the table: writes by kind per job, the total against N + 4, Events and dry runs apart; return the
    figures."""
    events = [w for w in writes if w.resource == "events"]
    dry_runs = [w for w in writes if w.dry_run]  # the first worker of each new job: validated, not stored
    api = [w for w in writes if w.resource != "events" and not w.dry_run]
    failed = [w for w in api if not w.ok]
    m = len(jobs)
    target = n + 4
    print(f"\nAPI writes per TorchJob, happy path: {m} jobs x {n} workers, all Succeeded in {elapsed:.1f} s")
    print(f"(counted by the apiserver's audit log; writer = user agent {' or '.join(OPERATOR_AGENT)}*)\n")
    print(f"{'verb resource':<34}{'total':>7}{'per job':>9}")
    for kind, count in sorted(by_kind(api).items()):
        print(f"{kind:<34}{count:>7}{count / m:>9.2f}")
    per_job = attribute(api, jobs)
    unattributed = len(api) - sum(per_job.values())
    first, rest = per_job[jobs[0]], [per_job[j] for j in jobs[1:]]
    worst = max(rest, default=first)
    print(f"{'-' * 50}\n{'total':<34}{len(api):>7}{len(api) / m:>9.2f}")
    print(
        f"first job (with the shared Service): {first}; the others: min {min(rest, default=0)}, max {worst}"
    )
    print(f"writes of no job: {unattributed}")
    print(f"rejected writes (non-2xx, counted above): {len(failed)} {dict(by_kind(failed))}")
    print(f"Events (apart): {len(events)} total, {len(events) / m:.2f} per job")
    print(f"dry runs (apart, nothing stored): {len(dry_runs)} total, {len(dry_runs) / m:.2f} per job")
    ok = first <= target + 1 and worst <= target and not unattributed
    verdict = "PASS" if ok else "FAIL"
    print(f"\nbar: N + 4 = {target} writes per job, N + 5 for the first (the Service): {verdict}")
    return {
        "jobs": m,
        "workers": n,
        "worst": max(first, worst),
        "first": first,
        "worst_rest": max(rest) if rest else None,
        "unattributed": unattributed,
        "mean": len(api) / m,
        "target": target,
        "by_kind": dict(by_kind(api)),
        "events": len(events),
        "passed": ok,
    }


if __name__ == "__main__":
    main()
