"""Benchmark: duplicate pods across operator restarts during job creation.

Run: ``python -m e2e.bench.bench_restarts [--jobs 100] [--restarts 50] [--workers 2]``. Starts the local rig
(write audit on), creates the jobs through the apiserver at an even pace while the operator
(``pyroclast run``, a process) is SIGKILLed and started again `restarts` times after random lives of 0.3-3 s,
then lets the last operator settle every job to Running and checks each has exactly its N attempt-0 pods.
Pod creates are counted by the apiserver (``apiserver_request_total``; and the audit log, per namespace):
successful creates must equal pods; AlreadyExists conflicts (a restarted operator re-trying) are reported.

Prints the figures and the verdict (zero duplicate pods, every job with exactly its pods, no pod deletes);
``--json`` writes them for the table; exits 1 when the verdict fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from e2e.bench.audit import by_kind, log_size, read_writes
from e2e.bench.harness import OPERATOR_AGENT, new_namespace, start_rig
from e2e.bench.restarts import storm
from e2e.cluster.pool import NodePool


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="workers N per job (default 2)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    figures: dict[str, object] = {}

    cluster = start_rig()
    assert cluster.audit_log is not None
    try:
        pool = NodePool(cluster)
        pool(max(2, (args.jobs * args.workers + 31) // 32), cpu="32", pods=110)
        namespace = new_namespace(cluster, "bench-restarts")
        offset = log_size(cluster.audit_log)
        out = storm(
            cluster,
            pool,
            namespace,
            jobs=args.jobs,
            restarts=args.restarts,
            workers=args.workers,
            seed=args.seed,
        )
        audit = [w for w in read_writes(cluster.audit_log, offset) if w.namespace == namespace]
        operator = [w for w in audit if w.user_agent.startswith(OPERATOR_AGENT)]
        pod_creates = [w for w in operator if w.verb == "create" and w.resource == "pods"]
        pod_deletes = [w for w in operator if w.verb == "delete" and w.resource == "pods"]
        expected = args.jobs * args.workers
        print(f"\nOperator restarts during creation: {args.jobs} jobs x {args.workers} workers")
        lives = out.uptimes
        print(
            f"restarts (SIGKILL): {out.restarts}, operator lives: mean {statistics.mean(lives):.2f} s, "
            f"min {min(lives):.2f} s, max {max(lives):.2f} s"
        )
        print(f"settled (all Running) {out.settle_seconds:.1f} s after the last restart")
        print(f"pods: {out.pods} (expected {expected})")
        print(f"pod creates (apiserver_request_total): {out.creates_ok} ok, {out.conflicts} AlreadyExists")
        print(
            f"pod creates (audit, this namespace): {sum(w.ok for w in pod_creates)} ok, "
            f"{sum(w.code == 409 for w in pod_creates)} AlreadyExists; pod deletes: {len(pod_deletes)}"
        )
        print(f"operator writes by kind (audit): {dict(sorted(by_kind(operator).items()))}")
        print(f"duplicate pods (ok creates - pods expected): {out.duplicates}")
        print(f"jobs with a wrong pod set or a restart: {len(out.problems)}")
        for line in out.problems[:20]:
            print("  " + line)
        figures = verdict(out.duplicates, out.pods, expected, len(out.problems), len(pod_deletes))
        figures |= {"jobs": args.jobs, "workers": args.workers, "restarts": out.restarts}
        word = "PASS" if figures["passed"] else "FAIL"
        print(f"\nbar: zero duplicate pods, {out.restarts} restarts, {args.jobs} jobs created -> {word}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=1))
        pool.delete_all()
    finally:
        cluster.stop()
    if not figures.get("passed"):
        sys.exit(1)


def verdict(duplicates: int, pods: int, expected: int, problems: int, pod_deletes: int) -> dict[str, object]:
    """The figures the table reads, with the bar: no duplicate, every pod there, no job wrong, no delete."""
    passed = duplicates == 0 and pods == expected and problems == 0 and pod_deletes == 0
    return {
        "duplicates": duplicates,
        "pods": pods,
        "expected": expected,
        "problems": problems,
        "pod_deletes": pod_deletes,
        "passed": passed,
    }


if __name__ == "__main__":
    main()
