"""The benchmark table: P-figures from the benchmarks' JSON, the pod timeline, the profile summary."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from e2e.bench import __main__ as bench_main
from e2e.bench.audit import Write
from e2e.bench.bench_writes import attribute
from e2e.bench.profile import summarise
from e2e.bench.recovery import GangWatch
from e2e.bench.report import (
    Row,
    best_go_cpu,
    listed_rows,
    memory_rows,
    missed,
    operators_table,
    render,
    restarts_rows,
    scale_rows,
    writes_rows,
)
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


def by_figure(rows: list[Row]) -> dict[str, Row]:
    return {r.figure.strip(): r for r in rows}


def test_scale_rows_compute_ratios_and_verdicts() -> None:
    rows = by_figure(scale_rows(scale(ours_creates_only={"create_rate": 85.0})))
    p1 = rows["P1 pod creates/s, 10x8 (ref: raw client)"]
    assert (p1.ratio, p1.passed, p1.target) == (0.9, True, ">= 0.8x")
    tuned = rows["P2 s to all Running vs Kubeflow tuned"]
    assert (tuned.ratio, tuned.passed) == (0.4, True)
    # Below 80,000 pods the rig's RSS is shown without a target (bench_memory and bench_listed judge P4).
    p4 = rows["RSS MB on the rig, 10 jobs/8000 pods"]
    assert p4.ours == pytest.approx(61 * 2**20 / 1e6)
    assert (p4.passed, p4.target) == (None, "")
    assert p4.note == f"{2**20 / 8000:.0f} B/pod above idle, all in"
    p5 = rows["P5 s to synced+steady after -9, 10 jobs"]
    assert (p5.ours, p5.passed) == (2.5, True)
    assert rows["P5 pods created after the restart"].passed is True


def test_constant_targets_are_targets_not_references() -> None:
    rows = by_figure(scale_rows(scale()))
    p5 = rows["P5 s to synced+steady after -9, 10 jobs"]
    assert (p5.reference, p5.ratio, p5.target, p5.measured_reference) == (None, None, "<= 15 s", False)
    dup = rows["P5 pods created after the restart"]
    assert (dup.reference, dup.ratio, dup.target) == (None, None, "== 0")
    (memory,) = memory_rows({"jobs": 10, "pods": 80, "rss_mib": 300.0, "bytes_per_object": {"pod": 900}})
    assert (memory.reference, memory.ratio, memory.target, memory.passed) == (None, None, "<= 250 MB", False)
    text = render([p5, memory])
    assert "15.00" not in text  # the constant is not printed as a measured reference
    assert "250.00" not in text


def test_a_reference_that_timed_out_or_never_built_is_a_miss() -> None:
    rows = by_figure(scale_rows(scale(kubeflow_tuned={}, kubeflow_error="go build failed: exit 1")))
    tuned = rows["P2 s to all Running vs Kubeflow tuned"]
    assert (tuned.passed, tuned.ratio) == (False, None)
    assert tuned.note == "no data: go build failed: exit 1"
    default = rows["P2 s to all Running vs Kubeflow defaults"]
    assert default.passed is False  # shown without a target, but it has no data
    assert default.note == "no data: ref timed out at 50/80 pods"
    assert "n/a" in render(list(rows.values()))


def test_a_benchmark_that_wrote_nothing_still_has_every_row_and_all_miss() -> None:
    rows = scale_rows({}) + writes_rows({}) + memory_rows({}) + listed_rows({}) + restarts_rows({})
    assert len(scale_rows({})) == len(scale_rows(scale(ours_creates_only={"create_rate": 85.0})))
    assert all(r.passed is False for r in rows)
    assert all(r.note.startswith("no data") for r in rows)
    assert missed(rows) == rows


def test_scale_rows_fail() -> None:
    p5 = {**scale()["p5"], "pod_creates_after_restart": 3}
    rows = by_figure(scale_rows(scale(raw_rate=200.0, p5=p5, ours_creates_only={"create_rate": 150.0})))
    p1 = rows["P1 pod creates/s, 10x8 (ref: raw client)"]
    assert (p1.passed, p1.ratio) == (False, 0.45)
    assert rows["P1 same, scheduler stopped (as the raw pods)"].passed is False
    assert rows["P5 pods created after the restart"].passed is False
    assert "FAIL" in render(list(rows.values()))


def test_p4_on_the_rig_at_full_scale_has_a_verdict() -> None:
    full = {"idle_rss_mib": 60.0, "rss_mib": 250.0, "jobs": 10_000, "pods": 80_000}
    (p4,) = [r for r in scale_rows(scale(p4=full)) if r.figure.startswith("P4")]
    assert p4.ours == pytest.approx(250 * 2**20 / 1e6)
    assert p4.passed is False  # 262 MB


def test_writes_rows_count_the_shared_service_in_the_first_job() -> None:
    figures = {"workers": 4, "first": 9, "worst_rest": 8, "mean": 8.5, "unattributed": 0}
    first, rest = writes_rows(figures)[1], writes_rows(figures)[0]
    assert (rest.ours, rest.target, rest.passed) == (8, "<= 8 (N+4)", True)
    assert (first.ours, first.target, first.passed) == (9, "<= 9 (N+5)", True)
    over = writes_rows({**figures, "worst_rest": 9})
    assert over[0].passed is False
    stray = writes_rows({**figures, "unattributed": 1})
    assert [r.passed for r in stray] == [False, False]


def test_restarts_row_carries_the_duplicate_pod_verdict() -> None:
    good = {"duplicates": 0, "pods": 200, "expected": 200, "problems": 0, "pod_deletes": 0, "passed": True,
            "jobs": 100, "restarts": 50}  # fmt: skip
    (row,) = restarts_rows(good)
    assert (row.ours, row.target, row.passed) == (0, "== 0", True)
    (dup,) = restarts_rows({**good, "duplicates": 2, "passed": False})
    assert dup.passed is False
    (wrong,) = restarts_rows({**good, "pods": 199, "passed": False})  # no duplicate, yet a job lost a pod
    assert wrong.passed is False


def test_listed_row_judges_the_rig_rss() -> None:
    figures = {"jobs": 10_000, "rss_mib": 120.0, "first_list_pages": 1, "bytes_per_job": 9000}
    (row,) = listed_rows(figures)
    assert (row.figure, row.passed, row.target) == (
        "P4 RSS MB on the rig, 10000 TorchJobs listed",
        True,
        "<= 250 MB",
    )
    assert listed_rows({**figures, "rss_mib": 240.0})[0].passed is False  # 251.7 MB


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


def test_the_run_fails_when_a_benchmark_wrote_no_figures(tmp_path: Path) -> None:
    steps = bench_main.plan(True, tmp_path)
    assert bench_main.expected(steps) == ["scale", "writes", "memory", "listed"]
    (tmp_path / "writes.json").write_text(
        json.dumps({"workers": 4, "first": 9, "worst_rest": 8, "mean": 8.5, "unattributed": 0})
    )
    rows, sources = bench_main.rows(tmp_path, bench_main.expected(steps))
    assert set(sources) == {"writes"}
    code, lines = bench_main.verdict(rows, [], len(steps))
    assert code == 1
    assert lines[1].startswith("targets: 2 met, 18 missed or without data")
    assert "P4 RSS MB on the rig, ? TorchJobs listed" in lines[1]


def test_the_run_passes_only_with_every_row_met_and_every_benchmark_run() -> None:
    met = [Row("a", 1.0, None, "== 1", True), Row("b", 2.0, None, "", None)]
    assert bench_main.verdict(met, [], 2)[0] == 0
    assert bench_main.verdict(met, ["e2e.bench.bench_runtime"], 2)[0] == 1
    assert bench_main.verdict([*met, Row("c", None, None, "", False, None, "no data")], [], 2)[0] == 1


def test_the_full_run_reads_the_restart_storm_verdict(tmp_path: Path) -> None:
    assert "restarts" in bench_main.expected(bench_main.plan(False, tmp_path))


def test_p3_counts_the_shared_service_in_the_first_jobs_writes() -> None:
    def write(verb: str, resource: str, name: str) -> Write:
        return Write(verb, resource, "ns", name, 201, "pyroclast/0.1")

    writes = [
        write("create", "podgroups", "w-000-1a2b"),
        write("create", "services", "pyroclast-workers"),
        write("create", "pods", "w-000-worker-0"),
        write("patch", "torchjobs/status", "w-000"),
        write("create", "podgroups", "w-001-3c4d"),
        write("create", "pods", "w-001-worker-0"),
    ]
    per_job = attribute(writes, ["w-000", "w-001"])
    assert per_job == {"w-000": 4, "w-001": 2}
    assert sum(per_job.values()) == len(writes)  # nothing left unattributed


def test_vcjob_and_the_best_go_peer_have_their_verdicts() -> None:
    figures = scale(
        ours={"create_rate": 90.0, "running_seconds": 8.0, "operator_cpu_per_1000_pods": 12.0},
        vcjob={"create_rate": 60.0, "running_seconds": 10.0, "operator_cpu_per_1000_pods": 8.0},
        kubeflow_tuned={"create_rate": 40.0, "running_seconds": 20.0, "operator_cpu_per_1000_pods": 6.0},
        recovery_ours={"killed": 10, "recovered_seconds": 6.0, "recreated": 80, "recreate_rate": 20.0},
        recovery_vcjob={"killed": 10, "recovered_seconds": 3.0, "recreated": 10, "recreate_rate": 5.0},
    )
    rows = by_figure(scale_rows(figures))
    vs_vcjob = rows["P2 s to all Running vs vcjob"]
    assert (vs_vcjob.ratio, vs_vcjob.passed, vs_vcjob.target) == (0.8, True, "<= 1x")
    cpu = rows["Operator CPU s per 1,000 pods vs best Go peer"]
    # The best Go peer is the one of least CPU that finished (Kubeflow at its defaults timed out).
    assert (cpu.reference, cpu.ratio, cpu.passed, cpu.note) == (6.0, 2.0, False, "best: kubeflow_tuned")
    recovery = rows["Gang recovery s vs vcjob"]
    assert (recovery.ratio, recovery.passed) == (2.0, False)
    assert recovery.note == "10 deleted; pods recreated 80 vs 10"
    assert rows["pods recreated/s vs vcjob"].ratio == 4.0
    table = operators_table(figures)
    assert "pyroclast" in table
    assert "vcjob" in table
    assert "kubeflow tuned" in table


def test_a_go_peer_that_timed_out_is_not_the_best() -> None:
    figures = scale(vcjob={"operator_cpu_per_1000_pods": 1.0, "timed_out": True})
    assert best_go_cpu(figures) is None
    row = by_figure(scale_rows(figures))["Operator CPU s per 1,000 pods vs best Go peer"]
    assert row.passed is False


def test_a_missing_vcjob_run_is_a_miss_but_a_skipped_peer_has_no_rows() -> None:
    rows = by_figure(scale_rows(scale()))
    assert rows["P2 s to all Running vs vcjob"].passed is False
    assert rows["Gang recovery s vs vcjob"].note.startswith("no data")
    skipped = by_figure(scale_rows(scale(vcjob_skipped=True, kubeflow_skipped=True, jobset_skipped=True)))
    assert not [f for f in skipped if "vcjob" in f or "Kubeflow" in f or "JobSet" in f]


def test_help_prints_usage_and_runs_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench_main.main(["--help", "--results", str(tmp_path)])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m e2e.bench")
    assert "--smoke" in out
    assert "--quick" in out
    assert not list(tmp_path.iterdir())


def test_missing_binaries_stop_the_run_with_one_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "bin"))
    monkeypatch.delenv("PYROCLAST_RIG_BIN", raising=False)
    monkeypatch.setattr("e2e.cluster.binaries.FALLBACK_DIR", tmp_path / "fallback")
    for name in ("ETCD", "KUBE_APISERVER"):
        monkeypatch.delenv(f"TEST_ASSET_{name}", raising=False)
    assert bench_main.main(["--smoke", "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("e2e.bench: cannot run: missing cluster binaries: etcd, kube-apiserver")
    assert "e2e/build-cluster.sh" in err
    assert not (tmp_path / "results").exists()


def test_the_smoke_plan_is_the_scale_run_alone_without_a_go_build(tmp_path: Path) -> None:
    (step,) = bench_main.plan(bench_main.SMOKE, tmp_path)
    assert step[0] == "e2e.bench.bench_scale"
    assert "--skip-kubeflow" in step
    assert "--skip-jobset" in step
    assert "--profile" in step
    assert bench_main.expected([step]) == ["scale"]


class _FakeApi:
    """Lists one pod, then one watch: a new pod, a BOOKMARK (no pod in it), the first pod deleted."""

    def __init__(self, stop: Any) -> None:
        self._stop = stop

    def get(self, path: str) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": "1"}, "items": [_pod("w-worker-0", "a", "Running")]}

    def watch(self, path: str, rv: str, timeout_seconds: int) -> Any:
        yield {"type": "ADDED", "object": _pod("w-worker-1", "b", "Pending")}
        yield {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "3"}}}
        self._stop.set()
        yield {"type": "DELETED", "object": _pod("w-worker-0", "a", "Running")}

    def close(self) -> None:
        pass


def _pod(name: str, uid: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "resourceVersion": "2"}, "status": {"phase": phase}}


@pytest.mark.parametrize("kind", [PodTimeline, GangWatch])
def test_pod_watches_see_pods_not_bookmarks(kind: type[PodTimeline] | type[GangWatch]) -> None:
    watch = kind(cluster=None, namespace="ns")  # type: ignore[arg-type]
    watch.cluster = type("C", (), {"new_api": lambda _self: _FakeApi(watch._stop)})()  # type: ignore[assignment]
    watch._run(threading.Event())
    if isinstance(watch, PodTimeline):
        assert set(watch.created) == {"w-worker-0", "w-worker-1"}
        assert set(watch.running) == {"w-worker-0"}
    else:
        assert set(watch.first_seen) == {"a", "b"}
        assert watch.uids() == {"b"}  # the deleted pod is gone


def test_a_peer_given_up_after_its_time_limit_bounds_the_time_ratio_from_above() -> None:
    figures = scale(
        ours={"create_rate": 90.0, "running_seconds": 8.0},
        vcjob={"created": 70, "pods": 80, "timed_out": True, "timeout_seconds": 10.0},
        kubeflow_default={"created": 50, "pods": 80, "timed_out": True, "timeout_seconds": 40.0},
        recovery_ours={"killed": 10, "recovered_seconds": 6.0, "recreated": 80, "recreate_rate": 20.0},
        recovery_vcjob={"killed": 10, "recreated": 70, "timed_out": True, "timeout_seconds": 5.0},
    )
    rows = by_figure(scale_rows(figures))
    vs_vcjob = rows["P2 s to all Running vs vcjob"]
    # vcjob's time is over 10 s, so ours (8 s) is at most 0.8x of it: within the <= 1x target.
    assert (vs_vcjob.reference, vs_vcjob.ratio, vs_vcjob.passed, vs_vcjob.at_least) == (10.0, 0.8, True, True)
    assert "ref timed out after 10 s" in vs_vcjob.note
    default = rows["P2 s to all Running vs Kubeflow defaults"]
    assert (default.ratio, default.passed) == (0.2, None)  # shown without a target, with its data
    # Ours took longer than vcjob's limit: the ratio is unknown, so no pass.
    recovery = rows["Gang recovery s vs vcjob"]
    assert (recovery.ratio, recovery.passed, recovery.at_least) == (1.2, False, True)
    assert recovery.note.startswith("10 deleted; pods recreated 80 vs 70; ref timed out after 5 s")
    text = render([vs_vcjob, recovery])
    assert ">10.00" in text
    assert "<0.80" in text
    # A rate is no time: a peer that timed out still has no creates/s to compare with.
    assert rows["pod creates/s vs vcjob"].passed is False
