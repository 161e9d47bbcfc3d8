"""`make bench` / `make bench-quick`: every benchmark in turn, each printing its own figures.

Each runs as its own process (each starts its own cluster); one failing does not stop the rest.
"""

from __future__ import annotations

import subprocess
import sys

FULL: list[list[str]] = [
    ["e2e.bench.bench_runtime"],
    ["e2e.bench.bench_checkpoint"],
    ["e2e.bench.bench_writes"],
    ["e2e.bench.bench_restarts"],
]
QUICK: list[list[str]] = [
    ["e2e.bench.bench_runtime", "--quick"],
    ["e2e.bench.bench_checkpoint", "--size-mb", "64"],
    ["e2e.bench.bench_writes", "--jobs", "2"],
    ["e2e.bench.bench_restarts", "--jobs", "10", "--restarts", "5"],
]


def main(argv: list[str]) -> int:
    """Run the benchmarks; exit non-zero when any of them failed to run or missed its target."""
    plan = QUICK if "--quick" in argv else FULL
    failed: list[str] = []
    for module, *args in plan:
        print(f"\n=== {module} {' '.join(args)}", flush=True)
        if subprocess.call([sys.executable, "-m", module, *args]) != 0:
            failed.append(module)
    print(f"\nbenchmarks: {len(plan) - len(failed)} ok, {len(failed)} failed {failed or ''}".rstrip())
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
