"""Expectations: a job waits until the caches show its own creates, deletes and status writes, or a TTL."""

from __future__ import annotations

from controller.torchjob.expectations import Expectations


class Tick:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_nothing_expected_is_satisfied() -> None:
    assert Expectations().satisfied("ns/job", "1", set(), set())


def test_pending_until_every_expectation_is_observed() -> None:
    exp = Expectations()
    assert not exp.pending("ns/job")
    exp.created("ns/job", "Pod", "job-worker-0")
    assert exp.pending("ns/job")
    assert not exp.pending("ns/other")
    assert exp.satisfied("ns/job", "1", {("Pod", "job-worker-0")}, set())
    assert not exp.pending("ns/job")


def test_creates_wait_until_seen() -> None:
    exp = Expectations()
    exp.created("ns/job", "Pod", "job-worker-0")
    exp.created("ns/job", "Pod", "job-worker-1")
    assert not exp.satisfied("ns/job", "1", {("Pod", "job-worker-0")}, set())
    assert exp.satisfied("ns/job", "1", {("Pod", "job-worker-1")}, set())  # each seen once is enough


def test_deletes_wait_until_the_object_is_no_longer_seen() -> None:
    exp = Expectations()
    exp.deleted("ns/job", "Pod", "uid-a")
    assert not exp.satisfied("ns/job", "1", set(), {("Pod", "uid-a")})
    assert exp.satisfied("ns/job", "1", set(), {("Pod", "uid-b")})


def test_status_write_waits_until_the_job_version_moves() -> None:
    exp = Expectations()
    exp.status_written("ns/job", "41")
    assert not exp.satisfied("ns/job", "41", set(), set())
    assert exp.satisfied("ns/job", "42", set(), set())


def test_expectations_expire_after_the_ttl() -> None:
    tick = Tick()
    exp = Expectations(ttl=10.0, clock=tick)
    exp.created("ns/job", "Pod", "never-seen")
    tick.t = 5.0
    assert not exp.satisfied("ns/job", "1", set(), set())
    tick.t = 10.5
    assert exp.satisfied("ns/job", "1", set(), set())


def test_jobs_are_independent_and_forget_drops_all() -> None:
    exp = Expectations()
    exp.created("ns/a", "Pod", "a-worker-0")
    assert exp.satisfied("ns/b", "1", set(), set())
    exp.forget("ns/a")
    assert exp.satisfied("ns/a", "1", set(), set())
