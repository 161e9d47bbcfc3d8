"""`pyroclast.jobs` without a cluster: its errors' exit codes and messages, the logs request, worker order,
the 404 mapping and `wait_job`'s timeout (on the in-memory API server and a virtual clock)."""

from __future__ import annotations

from typing import Any

import pytest

from api import TorchJob
from api.queue import QueueState
from controller.runtime.client import Client
from controller.runtime.errors import error_from_status
from controller.runtime.fakeapi import FakeApiServer
from pyroclast.errors import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_TIMEOUT, NotFoundError, explain
from pyroclast.jobs import (
    JobExistsError,
    NoPriorityClassError,
    NoWorkerError,
    QueueClosedError,
    UnknownQueueError,
    WaitTimeoutError,
    _index,  # pyright: ignore[reportPrivateUsage]
    _log_params,  # pyright: ignore[reportPrivateUsage]
    _missing_job,  # pyright: ignore[reportPrivateUsage]
    job_not_found,
    wait_job,
)
from pyroclast.jobspec import build_job
from pyroclast.jobview import WaitFor
from tests.virtual_time import run_virtual

JOBS_API = "apis/pyroclast.dev/v1alpha1"


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (UnknownQueueError("q"), EXIT_NOT_FOUND, "queue q does not exist"),
        (QueueClosedError("q", QueueState.CLOSED), EXIT_REFUSED, "`pyroclast queue open q`"),
        (NoPriorityClassError("p"), EXIT_NOT_FOUND, "leave it out for the default priority"),
        (JobExistsError("ns", "ft"), EXIT_REFUSED, "`pyroclast job delete ft -n ns`"),
        (NoWorkerError("TorchJob ft has no worker 7 now"), EXIT_NOT_FOUND, "no worker 7"),
    ],
)
def test_sdk_errors_carry_their_exit_code_and_fix(error: Exception, code: int, words: str) -> None:
    assert explain(error, noun="TorchJob") == (str(error), code)
    assert words in str(error)


def test_the_logs_request_asks_only_for_what_was_given() -> None:
    assert _log_params(follow=False, tail=None, timestamps=False, previous=False) == {"container": "trainer"}
    assert _log_params(follow=True, tail=0, timestamps=True, previous=True) == {
        "container": "trainer",
        "follow": "true",
        "tailLines": "0",  # --tail 0 is a request too, not "no tail"
        "timestamps": "true",
        "previous": "true",
    }


def test_workers_sort_by_replica_index_and_a_stray_pod_goes_first() -> None:
    def pod(name: str, index: str | None) -> dict[str, Any]:
        labels = {} if index is None else {"pyroclast.dev/replica-index": index}
        return {"metadata": {"name": name, "labels": labels}}

    pods = [pod("w10", "10"), pod("w2", "2"), pod("odd", "x"), pod("none", None)]
    assert [p["metadata"]["name"] for p in sorted(pods, key=_index)] == ["odd", "none", "w2", "w10"]
    assert _index(pods[0]) == 10


def test_only_a_404_about_the_torchjob_becomes_the_job_not_found_message() -> None:
    def not_found(kind: str) -> Any:
        body = {
            "kind": "Status",
            "code": 404,
            "reason": "NotFound",
            "message": "x",
            "details": {"kind": kind},
        }
        return error_from_status(404, body)

    mapped = _missing_job(not_found("torchjobs"), "ns", "ft")
    assert isinstance(mapped, NotFoundError)
    assert str(mapped) == job_not_found("ns", "ft")
    assert "`pyroclast job list -n ns`" in str(mapped)
    other = not_found("namespaces")
    assert _missing_job(other, "ns", "ft") is other  # the namespace's own 404 keeps its own message


def _running_job() -> dict[str, Any]:
    job = build_job("ft", image="example.invalid/train:1", command=["-m", "train"], nodes=2)
    body = job.to_k8s() | {"metadata": {"name": "ft", "namespace": "ns"}}
    return body | {"status": {"phase": "Running"}}


def test_wait_gives_up_after_its_timeout_with_exit_code_6() -> None:
    fake = FakeApiServer()
    fake.put_object(JOBS_API, "torchjobs", _running_job())
    polls: list[float] = []

    async def main() -> None:
        await wait_job(
            Client(fake), "ft", "ns", within=3600.0, poll=30.0, on_change=lambda j: polls.append(0.0)
        )

    with pytest.raises(WaitTimeoutError) as exc:
        run_virtual(main)
    assert exc.value.exit_code == EXIT_TIMEOUT
    assert str(exc.value) == (
        "TorchJob ft is still Running after 3600s (waiting for finished); "
        "see why with `pyroclast job describe ft -n ns`"
    )
    assert polls == [0.0]  # one reading: unchanged ones are not reported again
    gets = [p for m, p, _ in fake.requests if m == "GET" and p.endswith("/torchjobs/ft")]
    assert len(gets) == 3600 // 30  # one read each poll period (0 s, 30 s, ... 3570 s), no more


def test_wait_for_running_ends_at_running_with_exit_code_0() -> None:
    fake = FakeApiServer()
    fake.put_object(JOBS_API, "torchjobs", _running_job())

    async def main() -> tuple[TorchJob, int]:
        return await wait_job(Client(fake), "ft", "ns", until=WaitFor.RUNNING, within=10.0)

    job, code = run_virtual(main)
    assert (job.metadata.name, code) == ("ft", 0)
