"""The benchmark table: P-figures from the benchmarks' JSON, the pod timeline, the profile summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e.bench.profile import summarise
from e2e.bench.report import render, scale_rows, writes_rows
from e2e.bench.timeline import PodTimeline


def scale(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "jobs": 10,
        "workers": 8,
        "raw_rate": 100.0,
        "ours": {"create_rate": 90.0, "running_seconds": 8.0},
        "kubeflow_tuned": {"create_rate": 40.0, "running_seconds": 20.0},
        "kubeflow_default": {"created": 50, "pods": 80, "running_seconds": None, "timed_out": True},
        "p4": {"idle_rss_mib": 60.0, "rss_mib": 61.0, "jobs": 10, "pods": 8000},
        "p5": {"synced_seconds": 1.0, "steady_seconds": 2.5, "pod_creates_after_restart": 0},
    }
    return base | over


def test_scale_rows_compute_ratios_and_verdicts() -> None:
    p1, p2_tuned, _, p2_default, _, p4, p5, dup = scale_rows(scale())
    assert (p1.ratio, p1.passed) == (0.9, True)
    assert (p2_tuned.ratio, p2_tuned.passed) == (0.4, True)
    assert p2_default.passed is None
    assert p2_default.note == "ref timed out at 50/80 pods"
    # Below 80,000 pods the rig's RSS is reported, not projected (bench_memory gives the verdict).
    assert p4.ours is not None
    assert abs(p4.ours - 61 * 2**20 / 1e6) < 1e-6
    assert (p4.passed, p4.target) == (None, "")
    assert p4.note == f"{2**20 / 8000:.0f} B/pod above idle, all in"
    assert (p5.ours, p5.passed, dup.passed) == (2.5, True, True)


def test_p4_on_the_rig_at_full_scale_has_a_verdict() -> None:
    full = {"idle_rss_mib": 60.0, "rss_mib": 250.0, "jobs": 10_000, "pods": 80_000}
    (p4,) = [r for r in scale_rows(scale(p4=full)) if r.figure.startswith("P4")]
    assert p4.ours is not None
    assert abs(p4.ours - 250 * 2**20 / 1e6) < 1e-6
    assert p4.passed is False  # 262 MB


def test_scale_rows_fail_and_unknown() -> None:
    p5 = {**scale()["p5"], "pod_creates_after_restart": 3}
    rows = scale_rows(scale(raw_rate=200.0, kubeflow_tuned={}, p5=p5))
    assert rows[0].passed is False
    assert rows[0].ratio == 0.45
    assert rows[1].reference is None
    assert rows[1].passed is None
    assert rows[-1].passed is False
    assert "n/a" in render(rows)
    assert "FAIL" in render(rows)


def test_p1_with_the_scheduler_stopped_is_its_own_row() -> None:
    rows = scale_rows(scale(ours_creates_only={"create_rate": 85.0}))
    assert rows[0].ratio == 0.9
    assert rows[1].figure.startswith("P1 same, scheduler stopped")
    assert (rows[1].ours, rows[1].ratio, rows[1].passed) == (85.0, 0.85, True)
    assert scale_rows(scale(ours_creates_only={"create_rate": 70.0}))[1].passed is False


def test_writes_row_against_n_plus_4() -> None:
    (row,) = writes_rows({"workers": 4, "worst": 9, "target": 8, "mean": 9.0})
    assert (row.passed, row.ratio) == (False, 9 / 8)


def test_timeline_series_counts_created_and_running() -> None:
    timeline = PodTimeline(cluster=None, namespace="ns")  # type: ignore[arg-type]
    timeline.created = {"a": 10.0, "b": 11.2, "c": 12.0}
    timeline.running = {"a": 11.5, "b": 12.5}
    assert timeline.series(10.0) == [(0.0, 1, 0), (1.0, 1, 0), (2.0, 3, 1), (3.0, 3, 2)]


def test_profile_summary_self_and_inclusive(tmp_path: Path) -> None:
    folded = tmp_path / "p.folded"
    folded.write_text("main (a.py:1);work (b.py:2) 3\nmain (a.py:1);idle (c.py:3) 1\n")
    text = summarise(folded)
    assert "4 samples" in text
    assert "  75.0  work (b.py)" in text
    assert " 100.0  main (a.py)" in text
