"""`make bench` / `make bench-quick`: the figures P1-P5 and the peers' as one table, JSON and plots.

Each benchmark runs as its own process (each starts its own cluster); one failing does not stop the rest.
Before any of them, every binary, module and tool they use is looked up (and the Go peers built):
anything missing stops the run at once with one error saying what and how to get it.
Results go to e2e/bench/results/<UTC time>[-quick|-smoke]/ (git-ignored): summary.json (the table and every
figure, time series included), pods.png (pods created and Running over time, every operator), the
operator's py-spy profile under P1 (profile/), and each benchmark's own JSON.

The scale run compares the operator with Volcano's own job controller (vcjob), JobSet and Kubeflow's
training-operator on the same workload in one rig (time to every pod Running, creates/s, the operator's CPU
per 1,000 pods, apiserver requests per pod, peak RSS: the per-operator table), and runs the
failure-recovery scenario (one worker of every running gang deleted at once) for TorchJob and vcjob.

Quick: 50 jobs x 8 workers, 2 jobs for P3, P4 in process at 1,000 jobs and on the rig at 1,000 listed
TorchJobs (about 6 minutes). Full: 1,000 jobs x 8 workers as the issue sets, P4 in process at 10,000 jobs /
80,000 pods (bench_memory) and on the rig at 10,000 TorchJobs (bench_listed), 5 jobs for P3, then the
runtime, checkpoint and restart-storm benchmarks.

The exit status is 1 when a benchmark failed, when any row of the table missed its target, or when a row has
no data (its benchmark crashed, a reference did not build or timed out): a figure nobody measured is no
pass. ``--report DIR`` renders an earlier run's directory again, with the same verdict.

Smoke (``--smoke``, run by the test suite): the scale run alone at 2 jobs x 4 workers, without the
training-operator and JobSet (no Go build); it proves the harness end to end. Its status is 1 when the
benchmark failed or a row has no data; the targets are not judged at that size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from e2e.bench import jobset, kubeflow, report
from e2e.bench.peer import PeerUnavailable
from e2e.bench.profile import summarise
from e2e.cluster import modules
from e2e.cluster.binaries import BinaryNotFoundError, find_all

RESULTS = Path(__file__).resolve().parent / "results"

TABLES: dict[str, Callable[[report.JsonObject], list[report.Row]]] = {
    "scale": report.scale_rows,
    "writes": report.writes_rows,
    "memory": report.memory_rows,
    "listed": report.listed_rows,
    "restarts": report.restarts_rows,
}
"""Each benchmark JSON (``<name>.json``) and the rows it gives the table."""


SMOKE = "smoke"
QUICK = "quick"
FULL = "full"


def plan(mode: bool | str, out: Path) -> list[list[str]]:
    """Module and arguments of every benchmark to run (`mode`: FULL, QUICK or SMOKE; True is QUICK)."""
    mode = QUICK if mode is True else FULL if mode is False else mode
    scale = ["--json", str(out / "scale.json"), "--profile", str(out / "profile")]

    def into(name: str) -> list[str]:
        return ["--json", str(out / f"{name}.json")]

    if mode == SMOKE:
        size = ["--jobs", "2", "--workers", "4", "--timeout", "60"]
        return [["e2e.bench.bench_scale", *size, "--skip-kubeflow", "--skip-jobset", *scale]]
    if mode == QUICK:
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


class Unprepared(RuntimeError):
    """Something the planned benchmarks need is missing or failed to build; the message says what and how."""


def prepare(steps: list[list[str]]) -> dict[str, str]:
    """Check every binary, module and tool the planned benchmarks use, and build the training-operator when
    a step runs it; the environment the benchmarks then run with. Raises Unprepared at the first problem."""
    env = dict(os.environ)
    try:
        find_all()
        modules.kwok_dir()
        modules.volcano_dir()
    except (BinaryNotFoundError, modules.ModuleNotFoundInCacheError) as err:
        raise Unprepared(str(err)) from None
    args = [a for _, *rest in steps for a in rest]
    if "--profile" in args and not (Path(sys.executable).parent / "py-spy").exists():
        raise Unprepared(
            f"py-spy is not installed beside {sys.executable}: run `make venv` (the bench extra)"
        )
    if importlib.util.find_spec("matplotlib") is None:
        raise Unprepared("matplotlib is not installed: run `make venv` (the bench extra)")
    scale = any(module == "e2e.bench.bench_scale" for module, *_ in steps)
    for name, skip, build in (
        ("training-operator", "--skip-kubeflow", kubeflow.build),
        ("jobset", "--skip-jobset", jobset.build),
    ):
        if scale and skip not in args:
            print(f"building (or reusing) {name} ...", flush=True)
            try:
                env[f"TEST_ASSET_{name.upper().replace('-', '_')}"] = str(build())
            except PeerUnavailable as err:
                raise Unprepared(str(err)) from None
    return env


def verdict(
    rows_: list[report.Row], failed: list[str], ran: int | None, *, judged: bool = True
) -> tuple[int, list[str]]:
    """The exit status and the closing lines (`ran` None: an earlier run's results, read again; `judged`
    False: only rows without data fail, as in the smoke run)."""
    missed = report.missed(rows_) if judged else report.without_data(rows_)
    lines = [
        "benchmarks: not run here (--report)"
        if ran is None
        else f"benchmarks: {ran - len(failed)} ran, {len(failed)} failed {failed or ''}".rstrip(),
        f"targets: {sum(r.passed is True for r in rows_)} met, {len(missed)} missed or without data "
        f"{[r.figure.strip() for r in missed] or ''}".rstrip()
        if judged
        else f"targets: not judged at this size; {len(missed)} rows without data "
        f"{[r.figure.strip() for r in missed] or ''}".rstrip(),
    ]
    return (1 if failed or missed else 0), lines


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line (``--help`` prints the module's description)."""
    parser = argparse.ArgumentParser(
        prog="python -m e2e.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (make bench-quick), about 6 minutes")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, the scale run only (the test suite)")
    parser.add_argument("--report", type=Path, metavar="DIR", help="render an earlier run's results again")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR",
                        help=f"where each run's directory goes (default {RESULTS})")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the benchmarks (or re-read a run with ``--report DIR``); 1 when anything failed or missed, 2 when
    something they need is missing."""
    args = parse(argv)
    mode = SMOKE if args.smoke else QUICK if args.quick else FULL
    ran: int | None = None
    if args.report is not None:
        out = args.report
        steps, failed = plan(mode, out), []
    else:
        out = args.results / (
            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ("" if mode == FULL else f"-{mode}")
        )
        steps, failed = plan(mode, out), []
        try:
            env = prepare(steps)
        except Unprepared as err:
            print(f"e2e.bench: cannot run: {err}", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        for module, *step_args in steps:
            print(f"\n=== {module} {' '.join(step_args)}", flush=True)
            if subprocess.call([sys.executable, "-m", module, *step_args], env=env) != 0:
                failed.append(module)
        ran = len(steps)
    table, sources = rows(out, expected(steps))
    print(f"\n{report.render(table)}")
    if scale := sources.get("scale"):
        print(f"\n{report.operators_table(scale)}")
    report.write_json(out / "summary.json", table, sources)
    if scale and report.plot(scale, out / "pods.png"):
        print(f"plot: {out / 'pods.png'}")
    if (folded := out / "profile" / "ours-p1.folded").exists():
        (out / "profile" / "top.txt").write_text(summarise(folded))
        print(f"operator profile under P1: {out / 'profile' / 'top.txt'}")
    print(f"results: {out}")
    code, lines = verdict(table, failed, ran, judged=mode != SMOKE)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
