"""Live progress reports, the pure half: the request body, the TokenReview answer, who may report, the fold.

A worker pod gets a projected service-account token for :data:`~api.contract.PROGRESS_AUDIENCE` (bound to
the pod, 10 minutes) and POSTs a :class:`~api.contract.ProgressReport` to the operator with it. The operator
asks the apiserver (TokenReview) who holds the token, takes the pod from the token's claims and accepts the
report only from a current worker of a live TorchJob. Workers need no API rights. The I/O lives in
:mod:`controller.torchjob.progress_endpoint` (which also decides who is a current worker).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar, cast

from api import TorchJob, TorchJobStatus, contract
from api.constants import PROGRESS_TOKEN_VOLUME
from api.status import CheckpointStatus, Progress
from controller.runtime.objects import JsonObject
from controller.torchjob.report import as_count, as_finite, checkpoint_path

T = TypeVar("T")

TOKEN_VOLUME: Final = PROGRESS_TOKEN_VOLUME
TOKEN_SECONDS: Final = 600
"""The token's lifetime; the kubelet rotates it at 80 %, so the workload re-reads the file on every post."""
POD_NAME_CLAIM: Final = "authentication.kubernetes.io/pod-name"
POD_UID_CLAIM: Final = "authentication.kubernetes.io/pod-uid"
_SA_PREFIX: Final = "system:serviceaccount:"


class Rejected(Exception):
    """A report refused with HTTP `status` (400, 401, 403, 413) and a message meant for the workload."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Body:
    """A report as posted; the checkpoint path is checked against the job later."""

    step: int
    total_steps: int | None
    loss: float | None
    checkpoint_step: int | None
    checkpoint_path: str | None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who holds a verified token: a service account, in a pod."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str


@dataclass(frozen=True, slots=True)
class LiveReport:
    """The latest accepted report of a job (`job_uid`), as received at `received`."""

    job_uid: str
    pod: str
    body: Body
    received: datetime


def parse_body(data: bytes) -> Body:
    """The JSON body; :class:`Rejected` (400) naming the field that is wrong."""
    try:
        raw: object = json.loads(data)
    except ValueError as err:
        raise Rejected(400, f"body is not JSON ({err}); send {{'step': N, ...}}") from None
    fields = _object(raw, "body", "{'step': N, 'totalSteps': M, 'loss': x}")
    unknown = sorted(set(fields) - contract.PROGRESS_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(contract.PROGRESS_FIELDS))
        raise Rejected(400, f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    step = _required_count(fields, "step")
    total = _optional(fields, "totalSteps", as_count, "an integer >= 0")
    loss = _optional(fields, "loss", as_finite, "a finite number")
    ckpt_step: int | None = None
    ckpt_path: str | None = None
    if fields.get("checkpoint") is not None:
        ckpt = _object(fields["checkpoint"], "checkpoint", "{'step': N, 'path': '...'}")
        ckpt_step = _required_count(ckpt, "step", "checkpoint.step")
        path: object = ckpt.get("path")
        if path is not None and not isinstance(path, str):
            raise Rejected(400, "checkpoint.path must be a string")
        ckpt_path = path
    return Body(step=step, total_steps=total, loss=loss, checkpoint_step=ckpt_step, checkpoint_path=ckpt_path)


def identity_from_review(review: JsonObject, audience: str = contract.PROGRESS_AUDIENCE) -> Identity:
    """The pod behind a TokenReview's answer; :class:`Rejected` (401) when the token does not name one."""
    status: JsonObject = review.get("status") or {}
    if not status.get("authenticated"):
        why = str(status.get("error") or "not authenticated")
        raise Rejected(401, f"token rejected by the apiserver: {why}")
    audiences: list[object] = status.get("audiences") or []
    if audience not in audiences:
        raise Rejected(
            401, f"token is not for audience {audience}; mount a projected token with that audience"
        )
    user: JsonObject = status.get("user") or {}
    username = str(user.get("username") or "")
    if not username.startswith(_SA_PREFIX) or username.count(":") != 3:
        raise Rejected(401, f"token belongs to {username or 'nobody'}, not to a service account")
    namespace, service_account = username.removeprefix(_SA_PREFIX).split(":")
    extra: JsonObject = user.get("extra") or {}
    pod_name, pod_uid = _claim(extra, POD_NAME_CLAIM), _claim(extra, POD_UID_CLAIM)
    if not pod_name or not pod_uid:
        raise Rejected(401, "token is not bound to a pod; use a projected serviceAccountToken volume")
    return Identity(namespace, service_account, pod_name, pod_uid)


def check_checkpoint(job: TorchJob, body: Body) -> None:
    """A reported checkpoint must be where the job's workers commit it; :class:`Rejected` (400) otherwise."""
    if body.checkpoint_step is None:
        return
    expected = checkpoint_path(job, body.checkpoint_step)
    if expected is None:
        raise Rejected(400, "checkpoint reported, but the TorchJob has no spec.checkpoint")
    if body.checkpoint_path is not None and body.checkpoint_path.rstrip("/") != expected:
        raise Rejected(400, f"checkpoint.path must be {expected} (the commit directory of checkpoint.step)")


def apply_live(job: TorchJob, status: TorchJobStatus, report: LiveReport | None) -> bool:
    """Fold the latest live report into ``status.progress`` (unless a newer one is there) and
    ``status.lastCheckpoint`` (when newer). True when the checkpoint advanced."""
    if report is None or report.job_uid != job.metadata.uid:
        return False
    body = report.body
    old = status.progress
    if old is None or old.updated_time is None or report.received >= old.updated_time:
        status.progress = Progress(
            step=body.step, total_steps=body.total_steps, loss=body.loss, updated_time=report.received
        )
    step = body.checkpoint_step
    last = status.last_checkpoint
    if step is None or job.spec.checkpoint is None or (last is not None and step <= last.step):
        return False
    status.last_checkpoint = CheckpointStatus(
        step=step, time=report.received, path=checkpoint_path(job, step)
    )
    return True


def accounting_of(status: TorchJobStatus) -> contract.ProgressAccounting | None:
    """What a ``202`` tells the worker of its job's cost and goodput, from the status the endpoint already
    holds (the informer cache's); None before the status has usage or goodput."""
    if status.usage is None and status.goodput is None:
        return None
    answer: contract.ProgressAccounting = {}
    usage = status.usage
    if usage is not None and usage.cost is not None:
        answer["cost"] = usage.cost
        if usage.currency:
            answer["currency"] = usage.currency
    goodput = status.goodput
    if goodput is not None:
        if goodput.percent is not None:
            answer["goodputPercent"] = goodput.percent
        lost = goodput.lost
        answer["lostSeconds"] = dict(
            zip(
                contract.LOST_CAUSES,
                (
                    lost.queued_seconds,
                    lost.restarting_seconds,
                    lost.preempted_seconds,
                    lost.recomputed_seconds,
                ),
                strict=True,
            )
        )
    return answer


def _object(raw: object, name: str, example: str) -> JsonObject:
    if not isinstance(raw, dict):
        raise Rejected(400, f"{name} must be a JSON object like {example}")
    return {str(k): v for k, v in cast(dict[object, object], raw).items()}


def _required_count(fields: JsonObject, key: str, name: str | None = None) -> int:
    value = as_count(fields.get(key))
    if value is None:
        raise Rejected(400, f"{name or key} is required and must be an integer >= 0")
    return value


def _optional(fields: JsonObject, key: str, convert: Callable[[object], T | None], what: str) -> T | None:
    value: object = fields.get(key)
    if value is None:
        return None
    converted = convert(value)
    if converted is None:
        raise Rejected(400, f"{key} must be {what}")
    return converted


def _claim(extra: JsonObject, key: str) -> str:
    values: object = extra.get(key)
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return ""
