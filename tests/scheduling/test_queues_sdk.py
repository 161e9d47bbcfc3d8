"""`pyroclast.queues` without a cluster: the open/close Command, the refusals' messages and exit codes, and
what is refused before any request is made."""

from __future__ import annotations

import pytest

from api.queue import QueueState
from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from pyroclast.errors import EXIT_REFUSED, EXIT_TIMEOUT, explain
from pyroclast.queues import (
    ProtectedQueueError,
    QueueAction,
    QueueInUseError,
    StateTimeoutError,
    command_manifest,
    delete_queue,
)

QUEUE = {
    "apiVersion": "scheduling.volcano.sh/v1beta1",
    "kind": "Queue",
    "metadata": {"name": "q", "uid": "u-1"},
}


def test_the_command_targets_the_queue_by_uid_and_is_owned_by_it() -> None:
    cmd = command_manifest(QUEUE, QueueAction.CLOSE, reason="maintenance")
    target = {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue", "name": "q", "uid": "u-1"}
    assert cmd["apiVersion"] == "bus.volcano.sh/v1alpha1"
    assert cmd["kind"] == "Command"
    assert (cmd["action"], cmd["target"], cmd["reason"]) == ("CloseQueue", target, "maintenance")
    assert cmd["metadata"]["generateName"] == "q-closequeue-"
    assert cmd["metadata"]["namespace"] == "default"  # as vcctl creates them
    assert cmd["metadata"]["ownerReferences"] == [{**target, "controller": True}]
    assert "reason" not in command_manifest(QUEUE, QueueAction.OPEN)


def test_a_queue_in_use_names_its_jobs_and_the_ways_out() -> None:
    jobs = [f"ns/j{i}" for i in range(7)]
    error = QueueInUseError("q", jobs)
    assert explain(error, noun="queue") == (str(error), EXIT_REFUSED)
    assert "used by 7 TorchJob(s): ns/j0, ns/j1, ns/j2, ns/j3, ns/j4 and 2 more" in str(error)
    assert "pyroclast queue close q" in str(error)
    assert "--force" in str(error)


def test_a_state_timeout_exits_6_and_points_at_the_queue_controller() -> None:
    error = StateTimeoutError("q", (QueueState.CLOSED, QueueState.CLOSING), QueueState.OPEN, 30.0)
    assert explain(error, noun="queue") == (str(error), EXIT_TIMEOUT)
    assert str(error).startswith("queue q is still Open after 30s (wanted Closed or Closing)")
    assert "QueueCommandSync" in str(error)


@pytest.mark.parametrize("name", ["root", "default"])
async def test_protected_queues_are_refused_before_any_request(name: str) -> None:
    fake = FakeApiServer()
    with pytest.raises(ProtectedQueueError) as exc:
        await delete_queue(Client(fake), name, force=True)
    assert fake.requests == []
    assert exc.value.exit_code == EXIT_REFUSED
    assert f"queue {name} is created and required by Volcano's scheduler" in str(exc.value)
