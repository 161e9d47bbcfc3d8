"""bench_listed (P4 on the rig) at a small size on the session's cluster: the operator, as its own process,
lists the suspended TorchJobs from the apiserver in pages, reconciles each to Suspended without
creating anything, and the figures reach the table with a verdict."""

from __future__ import annotations

from e2e.bench.bench_listed import first_list, measure, report, suspended_job
from e2e.bench.report import listed_rows
from e2e.cluster import Cluster

JOBS = 30


def test_suspended_jobs_are_listed_reconciled_and_measured(cluster: Cluster, crd: str) -> None:
    figures = measure(cluster, JOBS, timeout=300.0)
    assert figures["jobs"] == JOBS
    assert figures["first_list_rv"] == ""  # paged, not "0": the watch cache would send one whole body
    assert figures["first_list_items"] >= JOBS  # every job listed (other tests' may be there too)
    assert figures["first_list_pages"] == -(-figures["first_list_items"] // 500)
    assert 0 < figures["idle_rss_mib"] <= figures["rss_mib"] <= figures["peak_rss_mib"]
    assert figures["passed"] is True  # 30 jobs are far below 250 MB: the verdict is computed, not assumed
    (row,) = listed_rows(figures)
    assert (row.passed, row.target) == (True, "<= 250 MB")
    assert f"{JOBS} suspended TorchJobs" in report(figures)


def test_the_first_list_is_read_from_the_operators_log() -> None:
    line = (
        "2026-01-01 INFO controller.runtime.reflector listed 10000 torchjobs.pyroclast.dev at RV '0' "
        "(1 pages in all)"
    )
    assert first_list(f"noise\n{line}\nlisted 5 pods at RV '' (3 pages in all)\n") == (10000, "0", 1)
    assert suspended_job(3)["spec"]["runPolicy"] == {"suspend": True}
