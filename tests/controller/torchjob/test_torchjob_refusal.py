"""A create the apiserver refuses, and a queue that cannot admit the job, shown on the TorchJob.

On the fake API server: a 4xx answer to a pod, PodGroup or Service create becomes, within the same reconcile,
the CreateFailed phase and condition (the apiserver's message), one Warning Event and one log line per
distinct refusal, retried with the work queue's backoff, and cleared by the first pass whose creates succeed.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from controller.runtime.client import Client
from controller.runtime.errors import ApiError, Forbidden, Invalid
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Result
from controller.runtime.resource import Resource
from controller.torchjob.reconciler import TorchJobReconciler
from tests.controller.torchjob.reconcilers import (
    EVENTS,
    PODGROUPS,
    PODS,
    QUEUES,
    REQ,
    SERVICES,
    job_status,
    reconcile,
    set_pods,
    setup,
    sync,
    writes,
)

QUOTA = 'pods "llama-worker-0" is forbidden: exceeded quota: compute, requested: pods=1, limited: pods=0'


class Refuse:
    """Wraps the client's create: objects of `kind` are refused with `error` while it is set; dry runs too
    when `dry_runs` (else they pass: a refusal the dry run could not foresee, such as quota taken between)."""

    def __init__(self, client: Client, kind: str, error: ApiError | None, *, dry_runs: bool = False) -> None:
        self.create = client.create
        self.kind = kind
        self.error = error
        self.dry_runs = dry_runs
        self.dry_run_calls = 0

    async def __call__(
        self, resource: Resource, obj: JsonObject, namespace: str | None = None, *, dry_run: bool = False
    ) -> JsonObject:
        self.dry_run_calls += dry_run
        if self.error is not None and obj["kind"] == self.kind and (self.dry_runs or not dry_run):
            raise self.error
        return await self.create(resource, obj, namespace, dry_run=dry_run)


def refusing(
    kind: str, error: ApiError, *, dry_runs: bool = False, **spec: Any
) -> tuple[FakeApiServer, TorchJobReconciler, Refuse]:
    fake, reconciler, _ = setup(**spec)
    refuse = Refuse(reconciler.client, kind, error, dry_runs=dry_runs)
    reconciler.client.create = refuse  # type: ignore[method-assign]
    sync(fake, reconciler)
    return fake, reconciler, refuse


async def creates_succeed(fake: FakeApiServer, reconciler: TorchJobReconciler, refuse: Refuse) -> None:
    """The refusal goes away: the next pass creates the gang and turns the condition False."""
    refuse.error = None
    sync(fake, reconciler)
    await reconcile(reconciler)
    assert len(fake.objects[PODS]) == 2
    cond = condition(fake, "CreateFailed")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "Resolved")


def condition(fake: FakeApiServer, type_: str) -> JsonObject | None:
    return next((c for c in job_status(fake).get("conditions") or [] if c["type"] == type_), None)


def events(fake: FakeApiServer) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in fake.objects.get(EVENTS, {}).values()]


async def test_a_refused_pod_is_visible_within_one_reconcile_and_cleared_by_a_create(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="controller.torchjob.reconciler")
    fake, reconciler, refuse = refusing("Pod", Forbidden(403, "Forbidden", QUOTA))
    result = await reconcile(reconciler)
    # Retried with the work queue's per-item exponential backoff (a quota may free up), nothing raised.
    assert result == Result(requeue=True)
    status = job_status(fake)
    assert status["phase"] == "CreateFailed"  # written at once, not held back with minor changes
    cond = condition(fake, "CreateFailed")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "FailedCreatePod")
    assert QUOTA in cond["message"]
    assert "llama-worker-0" in cond["message"]
    assert "403" in cond["message"]
    warnings = [e for e in events(fake) if e[0] == "Warning"]
    assert warnings == [("Warning", "FailedCreatePod", cond["message"])]
    assert not [e for e in events(fake) if e[1] == "WaitingForScheduler"]  # it is not waiting for Volcano
    assert len(fake.objects[PODGROUPS]) == 1
    assert len(fake.objects[SERVICES]) == 1
    assert fake.objects.get(PODS, {}) == {}

    # The same refusal again: no status write, no second Event, no second warning line, never a traceback.
    since = len(fake.requests)
    sync(fake, reconciler)
    assert await reconcile(reconciler) == Result(requeue=True)
    assert [w for w in writes(fake, since) if "/status" in w[1]] == []
    assert len([e for e in events(fake) if e[0] == "Warning"]) == 1
    refusal_lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert [r.levelno for r in refusal_lines] == [logging.WARNING, logging.DEBUG]
    assert all(r.exc_info is None for r in caplog.records)

    # A different refusal (another cause) is a new Event and a new warning line.
    refuse.error = Forbidden(403, "Forbidden", 'pods "llama-worker-0" is forbidden: violates PodSecurity')
    sync(fake, reconciler)
    await reconcile(reconciler)
    assert [e[1] for e in events(fake) if e[0] == "Warning"] == ["FailedCreatePod", "FailedCreatePod"]
    assert "violates PodSecurity" in (condition(fake, "CreateFailed") or {})["message"]

    # The quota frees up: the creates succeed, the condition turns False, the job waits for Volcano.
    await creates_succeed(fake, reconciler, refuse)
    assert job_status(fake)["phase"] == "Queued"
    set_pods(fake, "Running")
    sync(fake, reconciler)
    await reconcile(reconciler)
    assert job_status(fake)["phase"] == "Running"


INVALID = (
    'Pod "llama-worker-0" is invalid: spec.containers[1].image: Required value; '
    'strict decoding error: unknown field "spec.hostNetwrok"'
)


async def test_an_invalid_first_worker_is_refused_in_a_dry_run_before_anything_exists() -> None:
    fake, reconciler, refuse = refusing("Pod", Invalid(422, "Invalid", INVALID), dry_runs=True)
    # Final: only an edit of the job can change the answer (and brings the job back): no retry loop.
    assert await reconcile(reconciler) == Result()
    assert refuse.dry_run_calls == 1
    assert job_status(fake)["phase"] == "CreateFailed"
    cond = condition(fake, "CreateFailed")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "FailedCreatePod")
    assert cond["message"].startswith("a dry run of creating Pod llama-worker-0 was refused (422): ")
    assert INVALID in cond["message"]
    assert [e for e in events(fake) if e[0] == "Warning"] == [("Warning", "FailedCreatePod", cond["message"])]
    # Nothing was created: no gang to clean up, no pod in a loop of refused creates.
    for collection in (PODGROUPS, SERVICES, PODS):
        assert fake.objects.get(collection, {}) == {}

    # The job is fixed: the dry run passes, the gang is created, the condition turns False.
    await creates_succeed(fake, reconciler, refuse)
    # A job with workers is not new: no further dry runs.
    calls = refuse.dry_run_calls
    set_pods(fake, "Running")
    sync(fake, reconciler)
    await reconcile(reconciler)
    assert refuse.dry_run_calls == calls


async def test_a_dry_run_refused_for_quota_is_retried_with_backoff() -> None:
    fake, reconciler, _ = refusing("Pod", Forbidden(403, "Forbidden", QUOTA), dry_runs=True)
    assert await reconcile(reconciler) == Result(requeue=True)  # a quota may free up
    assert QUOTA in (condition(fake, "CreateFailed") or {})["message"]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (
            "PodGroup",
            Invalid(422, "Invalid", 'PodGroup.scheduling.volcano.sh "x" is invalid: spec.queue: bad'),
        ),
        ("Service", Forbidden(403, "Forbidden", 'services "pyroclast-workers" is forbidden: exceeded quota')),
    ],
)
async def test_a_refused_podgroup_or_service_stops_the_pass_and_says_so(kind: str, error: ApiError) -> None:
    fake, reconciler, _ = refusing(kind, error)
    assert await reconcile(reconciler) == Result(requeue=True)
    assert job_status(fake)["phase"] == "CreateFailed"
    cond = condition(fake, "CreateFailed")
    assert cond is not None
    assert cond["reason"] == f"FailedCreate{kind}"
    assert error.message in cond["message"]
    assert fake.objects.get(PODS, {}) == {}  # what needs the refused object is not attempted
    assert ("Warning", f"FailedCreate{kind}", cond["message"]) in events(fake)


async def test_a_server_error_is_still_raised_and_not_shown_as_a_refusal() -> None:
    fake, reconciler, _ = refusing("Pod", ApiError(503, "ServiceUnavailable", "etcd leader changed"))
    with pytest.raises(ApiError):
        await reconciler.reconcile(REQ)
    assert condition(fake, "CreateFailed") is None


def closed_queue(name: str, state: str) -> JsonObject:
    return {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "Queue",
        "metadata": {"name": name},
        "status": {"state": state},
    }


@pytest.mark.parametrize(
    ("present", "reason", "fix"),
    [
        (None, "QueueNotFound", "pyroclast queue create research"),
        ("Closed", "QueueClosed", "queue open research"),
    ],
)
async def test_a_queue_that_cannot_admit_the_job_is_named_in_the_condition(
    present: str | None, reason: str, fix: str
) -> None:
    fake, reconciler, clock = setup(scheduling={"queue": "research"})
    if present is not None:
        fake.put_object(*QUEUES, closed_queue("research", present))
    sync(fake, reconciler)
    await reconcile(reconciler)
    clock.tick(3)  # past the status batch window: the first Queued is written
    sync(fake, reconciler)
    await reconcile(reconciler)
    assert job_status(fake)["phase"] == "Queued"
    cond = condition(fake, "Queued")
    assert cond is not None
    assert cond["reason"] == reason
    assert "'research'" in cond["message"]
    assert fix in cond["message"]
    assert [e for e in events(fake) if e[1] == reason] == [("Warning", reason, cond["message"])]
    # Opened (or created): the condition goes back to the scheduler's own words at the next look.
    fake.put_object(*QUEUES, closed_queue("research", "Open"))
    clock.tick(10)  # past the queue reader's cache
    sync(fake, reconciler)
    await reconcile(reconciler)
    clock.tick(3)  # a new message alone is a minor change: written with the next batch
    sync(fake, reconciler)
    await reconcile(reconciler)
    cond = condition(fake, "Queued")
    assert cond is not None
    assert cond["reason"] == "WaitingForScheduler"
