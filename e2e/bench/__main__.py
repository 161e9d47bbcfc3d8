"""`make bench` / `make bench-quick`: the issue's figures P1-P5 as one table, JSON and plots, plus the rest.

Each benchmark runs as its own process (each starts its own cluster); one failing does not stop the rest.
Results go to e2e/bench/results/<UTC time>[-quick]/ (git-ignored): summary.json (the table and every figure,
time series included), pods.png (pods created and Running over time, both operators), the operator's py-spy
profile under P1 (profile/), and each benchmark's own JSON.

Quick: 50 jobs x 8 workers, 2 jobs for P3, P4 in process at 1,000 jobs and on the rig at 1,000 listed
TorchJobs (about 6 minutes). Full: 1,000 jobs x 8 workers as the issue sets, P4 in process at 10,000 jobs /
80,000 pods (bench_memory) and on the rig at 10,000 TorchJobs (bench_listed), 5 jobs for P3, then the
runtime, checkpoint and restart-storm benchmarks.

The exit status is 1 when a benchmark failed, when any row of the table missed its target, or when a row has
no data (its benchmark crashed, a reference did not build or timed out): a figure nobody measured is no
pass. ``--report DIR`` renders an earlier run's directory again, with the same verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from e2e.bench import report
from e2e.bench.profile import summarise

RESULTS = Path(__file__).resolve().parent / "results"

TABLES: dict[str, Callable[[report.JsonObject], list[report.Row]]] = {
    "scale": report.scale_rows,
    "writes": report.writes_rows,
    "memory": report.memory_rows,
    "listed": report.listed_rows,
    "restarts": report.restarts_rows,
}
"""Each benchmark JSON (``<name>.json``) and the rows it gives the table."""


def plan(quick: bool, out: Path) -> list[list[str]]:
    """Module and arguments of every benchmark to run."""
    scale = ["--json", str(out / "scale.json"), "--profile", str(out / "profile")]

    def into(name: str) -> list[str]:
        return ["--json", str(out / f"{name}.json")]

    if quick:
        return [
            ["e2e.bench.bench_scale", "--jobs", "50", "--workers", "8", "--default-timeout", "120", *scale],
            ["e2e.bench.bench_writes", "--jobs", "2", "--workers", "4", *into("writes")],
            ["e2e.bench.bench_memory", "--jobs", "1000", "--workers", "8", *into("memory")],
            ["e2e.bench.bench_listed", "--jobs", "1000", *into("listed")],
            ["e2e.bench.bench_runtime", "--quick"],
        ]
    return [
        ["e2e.bench.bench_scale", "--jobs", "1000", "--workers", "8", *scale],
        ["e2e.bench.bench_writes", "--jobs", "5", "--workers", "4", *into("writes")],
        ["e2e.bench.bench_memory", "--jobs", "10000", "--workers", "8", *into("memory")],
        ["e2e.bench.bench_listed", "--jobs", "10000", *into("listed")],
        ["e2e.bench.bench_runtime"],
        ["e2e.bench.bench_checkpoint"],
        ["e2e.bench.bench_restarts", *into("restarts")],
    ]


def expected(steps: list[list[str]]) -> list[str]:
    """The tables the planned benchmarks must fill (by their ``--json`` file)."""
    names: list[str] = []
    for _, *args in steps:
        if "--json" in args:
            names.append(Path(args[args.index("--json") + 1]).stem)
    return names


def rows(out: Path, tables: list[str]) -> tuple[list[report.Row], dict[str, report.JsonObject]]:
    """Every expected table's rows: from its JSON, or without data when the benchmark wrote none."""
    sources: dict[str, report.JsonObject] = {}
    found: list[report.Row] = []
    for name in tables:
        path = out / f"{name}.json"
        figures: report.JsonObject = json.loads(path.read_text()) if path.exists() else {}
        if figures:
            sources[name] = figures
        found += TABLES[name](figures)
    return found, sources


def verdict(rows_: list[report.Row], failed: list[str], ran: int | None) -> tuple[int, list[str]]:
    """The exit status and the closing lines (`ran` None: an earlier run's results, read again)."""
    missed = report.missed(rows_)
    lines = [
        "benchmarks: not run here (--report)"
        if ran is None
        else f"benchmarks: {ran - len(failed)} ran, {len(failed)} failed {failed or ''}".rstrip(),
        f"targets: {sum(r.passed is True for r in rows_)} met, {len(missed)} missed or without data "
        f"{[r.figure.strip() for r in missed] or ''}".rstrip(),
    ]
    return (1 if failed or missed else 0), lines


def main(argv: list[str]) -> int:
    """Run the benchmarks (or re-read a run with ``--report DIR``); 1 when anything failed or missed."""
    quick = "--quick" in argv
    ran: int | None = None
    if "--report" in argv:
        out = Path(argv[argv.index("--report") + 1])
        steps, failed = plan(quick, out), []
    else:
        out = RESULTS / (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ("-quick" if quick else ""))
        out.mkdir(parents=True, exist_ok=True)
        steps, failed = plan(quick, out), []
        for module, *args in steps:
            print(f"\n=== {module} {' '.join(args)}", flush=True)
            if subprocess.call([sys.executable, "-m", module, *args]) != 0:
                failed.append(module)
        ran = len(steps)
    table, sources = rows(out, expected(steps))
    print(f"\n{report.render(table)}")
    report.write_json(out / "summary.json", table, sources)
    if sources.get("scale") and report.plot(sources["scale"], out / "pods.png"):
        print(f"plot: {out / 'pods.png'}")
    if (folded := out / "profile" / "ours-p1.folded").exists():
        (out / "profile" / "top.txt").write_text(summarise(folded))
        print(f"operator profile under P1: {out / 'profile' / 'top.txt'}")
    print(f"results: {out}")
    code, lines = verdict(table, failed, ran)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
