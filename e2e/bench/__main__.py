"""`make bench` / `make bench-quick`: the issue's figures P1-P5 as one table, JSON and plots, plus the rest.

Each benchmark runs as its own process (each starts its own cluster); one failing does not stop the rest.
Results go to e2e/bench/results/<UTC time>[-quick]/ (git-ignored): summary.json (the table and every figure,
time series included), pods.png (pods created and Running over time, both operators), the operator's py-spy
profile under P1 (profile/), and each benchmark's own JSON.

Quick: 50 jobs x 8 workers, 2 jobs for P3, P4 in process at 1,000 jobs (about 5 minutes). Full: 1,000 jobs
x 8 workers as the issue sets, P4 in process at 10,000 jobs / 80,000 pods (bench_memory),
5 jobs for P3, then the runtime, checkpoint and restart-storm benchmarks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from e2e.bench import report
from e2e.bench.profile import summarise

RESULTS = Path(__file__).resolve().parent / "results"


def plan(quick: bool, out: Path) -> list[list[str]]:
    """Module and arguments of every benchmark to run."""
    scale = ["--json", str(out / "scale.json"), "--profile", str(out / "profile")]
    writes = ["--json", str(out / "writes.json")]
    memory = ["--json", str(out / "memory.json")]
    if quick:
        return [
            ["e2e.bench.bench_scale", "--jobs", "50", "--workers", "8", "--default-timeout", "120", *scale],
            ["e2e.bench.bench_writes", "--jobs", "2", "--workers", "4", *writes],
            ["e2e.bench.bench_memory", "--jobs", "1000", "--workers", "8", *memory],
            ["e2e.bench.bench_runtime", "--quick"],
        ]
    return [
        ["e2e.bench.bench_scale", "--jobs", "1000", "--workers", "8", *scale],
        ["e2e.bench.bench_writes", "--jobs", "5", "--workers", "4", *writes],
        ["e2e.bench.bench_memory", "--jobs", "10000", "--workers", "8", *memory],
        ["e2e.bench.bench_runtime"],
        ["e2e.bench.bench_checkpoint"],
        ["e2e.bench.bench_restarts"],
    ]


def main(argv: list[str]) -> int:
    """Run the benchmarks; exit non-zero when any failed to run or a P-figure missed its target."""
    quick = "--quick" in argv
    out = RESULTS / (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ("-quick" if quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for module, *args in plan(quick, out):
        print(f"\n=== {module} {' '.join(args)}", flush=True)
        if subprocess.call([sys.executable, "-m", module, *args]) != 0:
            failed.append(module)
    rows, sources = _rows(out)
    print(f"\n{report.render(rows)}")
    report.write_json(out / "summary.json", rows, sources)
    if sources.get("scale") and report.plot(sources["scale"], out / "pods.png"):
        print(f"plot: {out / 'pods.png'}")
    if (folded := out / "profile" / "ours-p1.folded").exists():
        (out / "profile" / "top.txt").write_text(summarise(folded))
        print(f"operator profile under P1: {out / 'profile' / 'top.txt'}")
    missed = [r.figure for r in rows if r.passed is False]
    print(f"results: {out}")
    print(
        f"benchmarks: {len(plan(quick, out)) - len(failed)} ran, {len(failed)} failed {failed or ''}".rstrip()
    )
    print(f"targets: {sum(r.passed is True for r in rows)} met, {len(missed)} missed {missed or ''}".rstrip())
    return 1 if failed or missed else 0


def _rows(out: Path) -> tuple[list[report.Row], dict[str, report.JsonObject]]:
    sources: dict[str, report.JsonObject] = {}
    rows: list[report.Row] = []
    if (path := out / "scale.json").exists():
        scale = json.loads(path.read_text())
        sources["scale"] = scale
        rows += report.scale_rows(scale)
    if (path := out / "writes.json").exists():
        writes = json.loads(path.read_text())
        sources["writes"] = writes
        rows += report.writes_rows(writes)
    if (path := out / "memory.json").exists():
        memory = json.loads(path.read_text())
        sources["memory"] = memory
        rows += report.memory_rows(memory)
    return rows, sources


sys.exit(main(sys.argv[1:]))
