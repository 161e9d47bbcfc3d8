"""`make bench`'s entry point in its smoke mode (2 jobs x 4 workers, the scale run alone) on its own rig: a
broken harness (a crash in any phase, a missing tool, a figure no longer measured) fails the test suite.

The benchmark starts its own cluster (it measures every component's CPU, so it cannot share the session's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import BinaryNotFoundError, ModuleNotFoundInCacheError, modules
from e2e.cluster.binaries import find_all
from tests.required import missing

REPO = Path(__file__).resolve().parents[2]
JOBS, WORKERS = 2, 4

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(360)]


def test_the_smoke_run_measures_every_operator_and_the_recovery(tmp_path: Path) -> None:
    try:
        find_all()
        modules.volcano_dir()
    except (BinaryNotFoundError, ModuleNotFoundInCacheError) as exc:
        missing(f"CLUSTER UNAVAILABLE, the benchmark smoke run cannot start: {exc}")
    env = os.environ | {"PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "e2e.bench", "--smoke", "--results", str(tmp_path)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=330, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    (run,) = tmp_path.iterdir()
    summary: dict[str, Any] = json.loads((run / "summary.json").read_text())
    scale: dict[str, Any] = summary["sources"]["scale"]
    for key in ("ours", "vcjob"):
        figures = scale[key]
        assert figures["running"] == JOBS * WORKERS, (key, figures["running"])
        assert figures["operator_cpu_per_1000_pods"] > 0
        assert figures["operator_peak_rss_mib"] > 0
        # Each phase counts its own operator's creates: one that counted another phase's would show two or
        # more per pod. Ours creates each pod once; vcjob may send a create twice (a sync that ran before its
        # cache showed the first, answered AlreadyExists).
        posts = figures["requests_per_pod"]["POST pods"]
        if key == "ours":
            assert posts == pytest.approx(1.0), key
        else:
            assert 1.0 <= posts < 2.0, key
    # The operator dry-runs each new job's first worker before creating anything; vcjob does not.
    assert scale["ours"]["requests_per_pod"]["POST pods (dry run)"] == pytest.approx(1 / WORKERS)
    assert "POST pods (dry run)" not in scale["vcjob"]["requests_per_pod"]
    for key, recreated in (("recovery_ours", JOBS * WORKERS), ("recovery_vcjob", JOBS)):
        recovery = scale[key]
        assert recovery["killed"] == JOBS
        assert recovery["recovered_seconds"] is not None, (key, recovery)
        # The TorchJob restarts its whole gang (the workers rendezvous again); vcjob replaces the lost pod.
        assert recovery["recreated"] >= recreated, (key, recovery)
    rows = {r["figure"].strip(): r for r in summary["rows"]}
    for figure in (
        "P2 s to all Running vs vcjob",
        "Operator CPU s per 1,000 pods vs best Go peer",
        "Gang recovery s vs vcjob",
    ):
        assert rows[figure]["ratio"] is not None, rows[figure]
    assert (run / "pods.png").stat().st_size > 0
    assert "samples" in (run / "profile" / "top.txt").read_text()  # py-spy was there and recorded
    assert "vcjob" in proc.stdout.split("one rig", 1)[1]  # the per-operator table
