"""A job's runtime (spec.runtimeRef): read once, kept in the job's status, merged into its spec on every pass.

Where the resolved runtime is kept: in ``status.runtime`` of the job itself (:class:`~api.runtime.
RuntimeRecord`: the runtime's kind, name, generation, a hash and its whole spec as read). Not the merged spec:
the job's own spec stays live (scaling through ``/scale``, suspending, a new image while suspended all still
work), and every pass computes the effective spec as the pure merge of that record with the job's current
spec (:func:`api.runtime_merge.effective_spec`), so a lock keeps holding against later job edits too. Not an
annotation: users who may edit a job may edit its annotations, and could then rewrite what their runtime
locks; ``/status`` is written by the operator only. Not a snapshot ConfigMap: a second object to read, own,
watch and keep in step, for no gain. Status is lost only with the job. Editing or deleting the runtime
afterwards changes nothing for a job already resolved: the runtime is never read again for it, so the
operator needs no watch on runtimes (and only `get` on them).

Until it is resolved, a job that names a runtime that does not exist (or cannot be read) waits: its
RuntimeResolved condition says so (reason RuntimeNotFound) and it is retried with the queue's per-item
backoff. A job that sets a field its runtime locks is refused with the condition (reason RuntimeFieldLocked)
and a Warning Event naming the field; so is one whose merged spec is invalid (reason InvalidMergedSpec). A
refusal is a check the apiserver cannot make at admission (it cannot read the runtime): nothing is created
until the job is changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final

from prometheus_client import Counter
from pydantic import ValidationError

from api import Condition, ConditionStatus, ConditionType, Phase, TorchJob, TorchJobStatus
from api.crd import torchjob_schema
from api.runtime import RuntimeKind, RuntimeRecord, TorchRuntimeSpec
from api.runtime_merge import Json, LockedField, Path, effective_spec, schema_defaults
from controller.runtime import objects
from controller.runtime.client import Client
from controller.runtime.errors import ApiError, NotFound
from controller.runtime.metrics import REGISTRY
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Request, Result
from controller.runtime.recorder import EventRecorder, ObjectRef
from controller.runtime.resource import Resource
from controller.torchjob.conditions import set_condition
from controller.torchjob.kinds import RUNTIMES

log = logging.getLogger(__name__)


REASON_RESOLVED: Final = "RuntimeResolved"
REASON_NOT_FOUND: Final = "RuntimeNotFound"
REASON_LOCKED: Final = "RuntimeFieldLocked"
REASON_INVALID: Final = "InvalidMergedSpec"

RESOLUTIONS: Final = Counter(
    "pyroclast_torchjob_runtime_resolutions_total",
    "Passes that resolved a job's runtime, by outcome (Resolved, RuntimeNotFound, RuntimeFieldLocked, "
    "InvalidMergedSpec)",
    ["outcome"],
    registry=REGISTRY,
)


@cache
def _defaults() -> dict[Path, Json]:
    return schema_defaults(torchjob_schema()["properties"]["spec"])


class Unresolved(ValueError):
    """The job cannot run with its runtime as it stands; `reason` is the condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def describe(record: RuntimeRecord) -> str:
    """`ClusterTorchRuntime/gpu` as quoted in messages."""
    return f"{record.kind}/{record.name}"


def effective_job(raw: JsonObject, record: RuntimeRecord) -> JsonObject:
    """The job as it runs: `raw` with its spec merged over `record`'s runtime spec (pure). Raises
    :class:`Unresolved` for a locked field the job overrides, or a merged spec the models refuse."""
    spec: JsonObject = raw.get("spec") or {}
    try:
        merged = effective_spec(describe(record), record.spec, spec, _defaults())
    except LockedField as err:
        raise Unresolved(REASON_LOCKED, str(err)) from err
    if not merged.get("image"):
        raise Unresolved(
            REASON_INVALID,
            f"neither the job nor {describe(record)} sets spec.image: set it in the job, or in the runtime's "
            "defaults",
        )
    out = {**raw, "spec": merged}
    try:
        TorchJob.from_k8s(out)
    except ValidationError as err:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
            if e["loc"][:1] == ("spec",)
            else e["msg"]
            for e in err.errors()
        )
        raise Unresolved(
            REASON_INVALID, f"the job merged with {describe(record)} is not a valid TorchJob: {problems}"
        ) from err
    return out


@dataclass
class Resolution:
    """What a pass does with a job naming a runtime: go on with `job` (the effective object), or stop with
    `result` (a status write or a wait came first)."""

    job: JsonObject | None = None
    result: Result | None = None
    written: bool = False
    """Whether the job's status was written (the next pass waits for the cache to show it)."""


class RuntimeResolver:
    """Reads a job's runtime once and records it (module docstring); I/O here, the merge is pure."""

    def __init__(self, client: Client, recorder: EventRecorder, jobs: Resource) -> None:
        """`jobs`: the TorchJob resource, whose status this writes."""
        self.client = client
        self.recorder = recorder
        self.jobs = jobs

    async def resolve(self, request: Request, raw: JsonObject, now: datetime) -> Resolution:
        """The effective job of `raw`, or a result to return (the status said why)."""
        status = TorchJobStatus.model_validate(raw.get("status") or {})
        fresh = status.runtime is None
        record = status.runtime
        if record is None:
            record_or_problem = await self._read(request, raw, now)
            if isinstance(record_or_problem, Unresolved):
                written = await self._refuse(request, raw, status, record_or_problem, now)
                return Resolution(result=Result(requeue=True), written=written)  # per-item backoff
            record = record_or_problem
        try:
            job = effective_job(raw, record)
        except Unresolved as err:
            written = await self._refuse(request, raw, status, err, now)
            return Resolution(result=Result(), written=written)  # waits for the job to change
        condition = status.condition(ConditionType.RUNTIME_RESOLVED)
        if fresh or condition is None or condition.status != ConditionStatus.TRUE:
            message = (
                f"resolved against {describe(record)} (generation {record.generation}, hash {record.hash}); "
                "later edits of the runtime do not change this job"
            )
            conditions = self._conditions(status, ConditionStatus.TRUE, REASON_RESOLVED, message, raw, now)
            patch: JsonObject = {"conditions": conditions}
            if fresh:
                patch["runtime"] = record.to_k8s()
            await self._patch(request, raw, patch)
            RESOLUTIONS.labels(REASON_RESOLVED).inc()
            log.info(
                "torchjob %s: %s",
                request,
                message,
                extra={
                    "runtime": describe(record),
                    "runtime_generation": record.generation,
                    "hash": record.hash,
                },
            )
            self._event(raw, "Normal", REASON_RESOLVED, message, now)
            return Resolution(result=Result(), written=True)  # the status write brings the job back
        return Resolution(job=job)

    async def _read(self, request: Request, raw: JsonObject, now: datetime) -> RuntimeRecord | Unresolved:
        spec: JsonObject = raw.get("spec") or {}
        ref: JsonObject = spec.get("runtimeRef") or {}
        kind = RuntimeKind(str(ref.get("kind", RuntimeKind.CLUSTER)))
        name = str(ref.get("name", ""))
        where = f" in namespace {request.namespace}" if kind == RuntimeKind.NAMESPACED else ""
        try:
            obj = await self.client.get(RUNTIMES[kind], name, request.namespace)
        except NotFound:
            return Unresolved(
                REASON_NOT_FOUND,
                f"{kind} {name} does not exist{where}; the job waits for it (retried with backoff): create "
                f"it, or change spec.runtimeRef",
            )
        except ApiError as err:
            if not 400 <= err.code < 500 or err.code == 429:
                raise
            return Unresolved(
                REASON_NOT_FOUND,
                f"{kind} {name}{where} cannot be read: {err.message or err}; retried with backoff",
            )
        try:
            runtime = TorchRuntimeSpec.model_validate(obj.get("spec") or {})
        except ValidationError as err:
            return Unresolved(REASON_INVALID, f"{kind} {name} is not a valid runtime: {err}")
        meta = objects.metadata(obj)
        generation = meta.get("generation")
        return RuntimeRecord(
            kind=kind.value,
            name=name,
            generation=generation if isinstance(generation, int) else None,
            hash=runtime.digest(),
            resolved_time=now,
            spec=runtime.to_k8s(),
        )

    def _conditions(
        self,
        status: TorchJobStatus,
        state: ConditionStatus,
        reason: str,
        message: str,
        raw: JsonObject,
        now: datetime,
    ) -> list[JsonObject]:
        generation = objects.metadata(raw).get("generation")
        updated: list[Condition] = set_condition(
            list(status.conditions or []),
            ConditionType.RUNTIME_RESOLVED,
            state,
            reason,
            message,
            now,
            generation if isinstance(generation, int) else None,
        )
        return [c.to_k8s() for c in updated]

    async def _refuse(
        self, request: Request, raw: JsonObject, status: TorchJobStatus, problem: Unresolved, now: datetime
    ) -> bool:
        """Say why in the condition and an Event, once per distinct message (retries repeat neither);
        whether the status was written."""
        RESOLUTIONS.labels(problem.reason).inc()
        old = status.condition(ConditionType.RUNTIME_RESOLVED)
        if old is not None and old.status == ConditionStatus.FALSE and old.message == str(problem)[:32768]:
            log.debug("torchjob %s: still unresolved: %s", request, problem)
            return False
        log.info("torchjob %s: runtime not resolved: %s", request, problem, extra={"reason": problem.reason})
        patch: JsonObject = {
            "conditions": self._conditions(
                status, ConditionStatus.FALSE, problem.reason, str(problem), raw, now
            )
        }
        if status.phase is None:
            patch["phase"] = Phase.PENDING.value
        await self._patch(request, raw, patch)
        self._event(raw, "Warning", problem.reason, str(problem), now)
        return True

    async def _patch(self, request: Request, raw: JsonObject, status: JsonObject) -> None:
        # Based on the version read: a job resolved meanwhile (another pass, another replica) conflicts.
        body = {"metadata": {"resourceVersion": objects.resource_version(raw)}, "status": status}
        await self.client.patch_status(self.jobs, request.name, body, request.namespace)

    def _event(self, raw: JsonObject, type_: Any, reason: str, message: str, now: datetime) -> None:
        meta = objects.metadata(raw)
        ref = ObjectRef(
            api_version=str(raw.get("apiVersion", "")),
            kind=str(raw.get("kind", "TorchJob")),
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=meta.get("uid"),
            resource_version=meta.get("resourceVersion"),
        )
        self.recorder.event(ref, type_, reason, message, now=now)
