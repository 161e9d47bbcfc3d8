"""scheduling.queues: job counts per queue and the `queue list` rows."""

from __future__ import annotations

import pytest

from api.quantity import parse_quantity
from api.queue import Queue
from scheduling.queues import JobCounts, allocation, count_jobs, queue_rows, rows_table
from scheduling.resources import display_quantity


def job(queue: str | None, phase: str | None) -> dict[str, object]:
    spec: dict[str, object] = {"scheduling": {"queue": queue}} if queue else {}
    return {"metadata": {"name": "j"}, "spec": spec, **({"status": {"phase": phase}} if phase else {})}


def test_count_jobs_by_phase_and_queue() -> None:
    jobs = [
        job("a", "Running"),
        job("a", "Restarting"),
        job("a", "Queued"),
        job("a", None),
        job("a", "Succeeded"),
        job("a", "Suspended"),
        job(None, "Pending"),
        job("b", "Failed"),
    ]
    assert count_jobs(jobs) == {"a": JobCounts(running=2, pending=2), "default": JobCounts(pending=1)}


def queue(name: str, **spec: object) -> Queue:
    status = spec.pop("status", None)
    return Queue.model_validate({"metadata": {"name": name}, "spec": spec, "status": status})


def test_allocation_shows_used_over_cap() -> None:
    q = queue(
        "a",
        capability={"cpu": "8", "nvidia.com/gpu": 4},
        status={"state": "Open", "allocated": {"cpu": "2500m", "memory": "2Gi", "pods": "0"}},
    )
    # Memory in the units people write (the scheduler reports bytes), as `queue get` shows the spec.
    assert allocation(q) == "cpu 2500m/8, memory 2Gi/-, nvidia.com/gpu 0/4"


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [
        ("68719476736", "64Gi"),
        ("64Gi", "64Gi"),
        ("1536Mi", "1536Mi"),
        ("1500000000", "1500M"),
        ("1G", "1G"),
        ("8", "8"),
        ("1000", "1000"),
        ("2500m", "2500m"),
        ("1025", "1025"),
        ("0", "0"),
    ],
)
def test_quantities_display_in_human_units_and_stay_exact(quantity: str, shown: str) -> None:
    assert display_quantity(parse_quantity(quantity)) == shown
    assert parse_quantity(shown) == parse_quantity(quantity)
    assert allocation(queue("b")) == "-"


def test_queue_rows_sorted_with_counts_and_unknown_state() -> None:
    rows = queue_rows(
        [queue("z", weight=2, status={"state": "Closing"}), queue("a", parent="root")],
        {"z": JobCounts(running=1, pending=3)},
    )
    assert [(r.name, r.state, r.weight, r.parent, r.running, r.pending) for r in rows] == [
        ("a", "Unknown", 1, "root", 0, 0),
        ("z", "Closing", 2, "-", 1, 3),
    ]
    assert rows_table(rows).splitlines() == [
        "NAME   STATE     WEIGHT   PARENT   ALLOCATED/CAPABILITY   RUNNING   PENDING",
        "a      Unknown   1        root     -                      0         0",
        "z      Closing   2        -        -                      1         3",
    ]
