"""Whether a job's Volcano queue can admit it (pure: no I/O).

Volcano keeps a PodGroup whose queue does not exist, or is Closed or Closing, Pending for ever without a word
on the PodGroup; the CLI refuses such a submit, but a job applied with kubectl or GitOps would sit Queued with
"PodGroup is Pending". The reconciler reads the queue while the gang waits (:mod:`.queue_reader`) and the plan
puts what this module says in the Queued condition: which queue, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from api.queue import QueueState
from controller.runtime.objects import JsonObject

REASON_QUEUE_NOT_FOUND: Final = "QueueNotFound"
REASON_QUEUE_CLOSED: Final = "QueueClosed"
_NOT_ADMITTING: Final = frozenset({QueueState.CLOSED.value, QueueState.CLOSING.value})


@dataclass(frozen=True, slots=True)
class QueueProblem:
    """Why the job's queue cannot admit it: the condition's reason and message."""

    reason: str
    message: str


def queue_problem(name: str, queue: JsonObject | None) -> QueueProblem | None:
    """What keeps queue `name` from admitting a job; `queue` is the Queue object, None when it does not
    exist. None when the queue is Open (or in a state Volcano admits in)."""
    fix = "spec.scheduling.queue cannot change: or delete the job and submit it to another queue"
    if queue is None:
        return QueueProblem(
            REASON_QUEUE_NOT_FOUND,
            f"Volcano queue {name!r} does not exist, so the gang is never admitted: create it "
            f"(pyroclast queue create {name}), {fix}",
        )
    status: JsonObject = queue.get("status") or {}
    state = str(status.get("state") or "")
    if state in _NOT_ADMITTING:
        return QueueProblem(
            REASON_QUEUE_CLOSED,
            f"Volcano queue {name!r} is {state} and admits no new jobs: open it "
            f"(pyroclast queue open {name}), {fix}",
        )
    return None
