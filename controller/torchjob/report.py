"""What the workload reports, read from its worker pods' termination messages: no API rights needed.

Local rank 0 of every pod writes a :class:`~api.contract.TerminationMessage` to ``/dev/termination-log`` on
every exit; the kubelet copies it (at most 4 KiB) into the container status, where the operator
already looks. Only typed, bounded fields are taken from it: the checkpoint path is rebuilt from the step and
the job's own ``checkpoint.path``, never copied from the message, so a workload cannot make the status point
anywhere else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeGuard, cast

from api import TorchJob, TorchJobStatus, contract
from api.constants import TRAINER_CONTAINER
from api.status import CheckpointStatus, Progress
from controller.runtime import objects
from controller.runtime.objects import JsonObject
from controller.torchjob.labels import REPLICA_INDEX_LABEL

_MAX_STEP: Final = 2**53


@dataclass(frozen=True, slots=True)
class Report:
    """One worker's final report."""

    pod: str
    finished: datetime | None
    step: int | None
    total_steps: int | None
    loss: float | None
    committed_step: int | None
    committed_time: datetime | None


def may_be_report(message: object) -> TypeGuard[str]:
    """Whether a termination message can be a workload report: JSON object text within the kubelet's 4 KiB,
    not a log tail (``FallbackToLogsOnError``)."""
    return (
        isinstance(message, str)
        and message.startswith("{")
        and len(message) <= contract.MAX_TERMINATION_MESSAGE
    )


FAILURE_MESSAGE_LIMIT: Final = 512
"""The most of a failed worker's message that is kept and quoted in a condition."""


def failure_message(terminated: JsonObject) -> str | None:
    """Why a trainer that exited non-zero says it stopped: its report's ``error``, or the last line of a plain
    termination message (the kubelet's log tail under ``FallbackToLogsOnError``); None after a clean exit."""
    text: object = terminated.get("message")
    if terminated.get("exitCode") in (0, None) or not isinstance(text, str):
        return None
    if may_be_report(text):
        try:
            body: object = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            error: object = cast(dict[str, object], body).get("error")
            return (error.strip()[:FAILURE_MESSAGE_LIMIT] or None) if isinstance(error, str) else None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:FAILURE_MESSAGE_LIMIT] if lines else None


def read_report(pod: JsonObject) -> Report | None:
    """The trainer container's termination message of a worker pod, if it holds a workload report."""
    if REPLICA_INDEX_LABEL not in objects.labels(pod):
        return None
    status: JsonObject = pod.get("status") or {}
    statuses: list[JsonObject] = status.get("containerStatuses") or []
    trainer = next((cs for cs in statuses if cs.get("name") == TRAINER_CONTAINER), None)
    if trainer is None:
        return None
    state: JsonObject = trainer.get("state") or {}
    last: JsonObject = trainer.get("lastState") or {}
    terminated: JsonObject = state.get("terminated") or last.get("terminated") or {}
    message: object = terminated.get("message")
    if not may_be_report(message):
        return None  # no report, or kubelet's log tail (FallbackToLogsOnError)
    try:
        body: object = json.loads(message)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    fields: JsonObject = {str(k): v for k, v in cast(dict[object, object], body).items()}
    return Report(
        pod=objects.name(pod),
        finished=parse_time(_field(terminated, "finishedAt")),
        step=as_count(fields.get("step")),
        total_steps=as_count(fields.get("total_steps")),
        loss=as_finite(fields.get("loss")),
        committed_step=as_count(fields.get("committed_step")),
        committed_time=_unix(fields.get("committed_time")),
    )


def checkpoint_path(job: TorchJob, step: int) -> str | None:
    """Where the workload commits `step` (:func:`~api.contract.step_dir_name` under the mount path)."""
    if job.spec.checkpoint is None:
        return None
    return f"{job.spec.checkpoint.path.rstrip('/')}/{contract.step_dir_name(step)}"


def apply_reports(job: TorchJob, status: TorchJobStatus, pods: Iterable[JsonObject], now: datetime) -> bool:
    """Fold the pods' reports into ``status.lastCheckpoint`` (newest step wins; a checkpoint is never
    forgotten) and ``status.progress`` (the latest report wins). True when a newer checkpoint was seen."""
    reports = [r for r in (read_report(p) for p in pods) if r is not None]
    advanced = False
    for report in reports:
        step = report.committed_step
        if step is None or job.spec.checkpoint is None:
            continue
        last = status.last_checkpoint
        if last is None or step > last.step:
            when = report.committed_time or report.finished or now
            status.last_checkpoint = CheckpointStatus(step=step, time=when, path=checkpoint_path(job, step))
            advanced = True
        elif step == last.step and last.time is None and report.committed_time is not None:
            status.last_checkpoint = last.model_copy(update={"time": report.committed_time})
    timed = [r for r in reports if r.step is not None]
    if timed:
        latest = max(timed, key=lambda r: r.finished or now)
        when = latest.finished or now
        old = status.progress
        if old is None or old.updated_time is None or when >= old.updated_time:
            assert latest.step is not None
            status.progress = Progress(
                step=latest.step, total_steps=latest.total_steps, loss=latest.loss, updated_time=when
            )
    return advanced


def as_count(value: object) -> int | None:
    """`value` if it is a plain int in [0, 2**53), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_STEP:
        return None
    return value


def as_finite(value: object) -> float | None:
    """`value` as a float if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _unix(value: object) -> datetime | None:
    seconds = as_finite(value)
    if seconds is None or seconds <= 0 or seconds >= 2**33:
        return None
    return datetime.fromtimestamp(int(seconds), UTC)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _field(obj: JsonObject, key: str) -> object:
    return obj.get(key)
