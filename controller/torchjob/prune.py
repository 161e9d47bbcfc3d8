"""The fields of pods and PodGroups the operator reads: informer transforms that cache only those.

The pod informer caches every pod of the cluster (tens of thousands on a large one), so what a cached pod
costs is most of the operator's memory. A pod as the API serves it is ~6 KB of JSON (half of it
``managedFields``), ~14 KB as Python dicts; the operator reads a dozen fields of it. These transforms
(controller-runtime's cache ``ByObject.Transform``, client-go's ``SetTransform``) rebuild each incoming object
from those fields only, with repeated strings interned and the subtrees most pods share (a Running pod's
status, a worker's spec, the owner references of one job's pods) stored once.

Readers: :mod:`.observe` (labels, deletion, phase, reason, Ready/DisruptionTarget conditions, terminated exit
codes, the trainer's PET_NNODES), :mod:`.report` (the trainer's terminated ``message``/``finishedAt``),
:mod:`.usage` (``startTime``, the trainer's ``finishedAt``), :mod:`.rendezvous` and the reconciler (name, uid,
deletion), :mod:`.progress_endpoint` (uid, labels, owner references), :func:`~scheduling.podgroup_spec_patch`
and :func:`.observe.observe_podgroup` (PodGroup spec and status), the runtime (namespace, name,
resourceVersion, owner references). Pods keep all their labels (label selectors); PodGroups none (nothing
reads them). A reader of another field must add it here; ``tests/controller/torchjob/test_torchjob_prune.py``
checks every decision of the plan is the same on pruned objects as on full ones.

Shared subtrees are part of the cache contract already in force: cached objects are read-only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Any, Final, cast

from api import contract
from api.constants import TRAINER_CONTAINER
from controller.runtime.objects import JsonObject
from controller.torchjob.report import failure_message, may_be_report

POD_CONDITIONS: Final = frozenset({"Ready", "DisruptionTarget"})
"""Pod conditions :func:`.observe.observe_worker` reads (only when True)."""
PODGROUP_SPEC: Final = ("minMember", "queue", "priorityClassName", "minResources")
"""The PodGroup spec fields the operator owns (:func:`scheduling.podgroup_spec_patch`)."""
_CONDITION: Final = ("type", "status", "reason", "message", "lastTransitionTime")
_OWNER: Final = ("apiVersion", "kind", "name", "uid", "controller")
_ABSENT: Final = object()
SHARED_LIMIT: Final = 65536
"""Entries of the table of shared subtrees before it starts afresh (what is stored keeps its subtrees)."""


class _Shared:
    """Equal read-only subtrees stored once (hash-consing), keyed by a hashable digest of their content."""

    def __init__(self, limit: int = SHARED_LIMIT) -> None:
        self.limit = limit
        self._table: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        try:
            value = self._table.get(key)
        except TypeError:  # a malformed object (a dict where a string belongs): stored, not shared
            return build()
        if value is None:
            if len(self._table) >= self.limit:
                self._table.clear()  # bounded: entries of deleted jobs must not pile up
            value = self._table[key] = build()
        return value


_shared = _Shared()


def _s(value: object) -> object:
    """`value`, interned when it is a string."""
    return sys.intern(value) if type(value) is str else value


def _dict(value: object) -> JsonObject:
    return cast(JsonObject, value) if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return cast(list[Any], value) if isinstance(value, list) else []


def _metadata(meta: JsonObject, *, labels: bool = True) -> JsonObject:
    out: JsonObject = {}
    for key in ("name", "uid", "resourceVersion"):
        if key in meta:
            out[key] = meta[key]
    if "namespace" in meta:
        out["namespace"] = _s(meta["namespace"])
    if labels and (kept := meta.get("labels")) is not None:
        out["labels"] = {_s(k): _s(v) for k, v in _dict(kept).items()}
    if refs := _list(meta.get("ownerReferences")):
        owners = tuple(tuple(_s(r.get(k, _ABSENT)) for k in _OWNER) for r in map(_dict, refs))
        out["ownerReferences"] = _shared.get(owners, lambda: [_owner(o) for o in owners])
    if meta.get("deletionTimestamp") is not None:
        out["deletionTimestamp"] = _s(meta["deletionTimestamp"])
    return out


def _owner(values: tuple[object, ...]) -> JsonObject:
    return {k: v for k, v in zip(_OWNER, values, strict=True) if v is not _ABSENT}


def _pod_spec(spec: JsonObject) -> JsonObject | None:
    """The trainer container's PET_NNODES (:func:`.observe._trainer_env` reads the first trainer)."""
    trainer = next(
        (c for c in map(_dict, _list(spec.get("containers"))) if c.get("name") == TRAINER_CONTAINER), None
    )
    if trainer is None:
        return None
    env = next(
        (e for e in map(_dict, _list(trainer.get("env"))) if e.get("name") == contract.PET_NNODES), None
    )
    key = ("spec", None if env is None else ("value" in env, _s(env.get("value"))))

    def build() -> JsonObject:
        container: JsonObject = {"name": TRAINER_CONTAINER}
        if env is not None:
            kept: JsonObject = {"name": contract.PET_NNODES}
            if "value" in env:
                kept["value"] = _s(env["value"])
            container["env"] = [kept]
        return {"containers": [container]}

    return _shared.get(key, build)


def _terminated(value: object, trainer: bool) -> JsonObject | None:
    """An exit code; the trainer's finish time and workload report too (:func:`.report.read_report`)."""
    terminated = _dict(value)
    if not terminated:
        return None
    out: JsonObject = {"exitCode": terminated.get("exitCode")}  # never empty: a falsy one reads as absent
    if trainer:
        if "finishedAt" in terminated:
            out["finishedAt"] = _s(terminated["finishedAt"])
        message = terminated.get("message")
        # a report (JSON, bounded) is read whole; of anything else (a log tail of FallbackToLogsOnError, up to
        # 4 KiB per pod) only the line a failed worker's condition quotes
        if may_be_report(message):
            out["message"] = message
        elif (said := failure_message(terminated)) is not None:
            out["message"] = said
    return out


def _container_status(status: JsonObject) -> JsonObject | None:
    trainer = status.get("name") == TRAINER_CONTAINER
    out: JsonObject = {"name": _s(status.get("name"))}
    for key in ("state", "lastState"):
        if (terminated := _terminated(_dict(status.get(key)).get("terminated"), trainer)) is not None:
            out[key] = {"terminated": terminated}
    return out if len(out) > 1 else None  # one that never terminated reads as absent


def _pod_status(status: JsonObject) -> JsonObject:
    conditions = tuple(
        tuple((k, _s(c[k])) for k in ("type", "status", "reason") if k in c)
        for c in map(_dict, _list(status.get("conditions")))
        if c.get("type") in POD_CONDITIONS and c.get("status") == "True"
    )
    phase, reason = _s(status.get("phase")), _s(status.get("reason"))
    started = _s(status.get("startTime"))  # whole seconds: a gang started at once still shares one subtree
    statuses = [s for s in map(_container_status, map(_dict, _list(status.get("containerStatuses")))) if s]

    def build() -> JsonObject:
        out: JsonObject = {}
        if phase is not None:
            out["phase"] = phase
        if reason is not None:
            out["reason"] = reason
        if started is not None:
            out["startTime"] = started
        if conditions:
            out["conditions"] = [dict(c) for c in conditions]
        if statuses:
            out["containerStatuses"] = statuses
        return out

    if statuses:  # exit codes, finish times and reports: rarely equal, not shared
        return build()
    return _shared.get(("status", phase, reason, started, conditions), build)


def prune_pod(pod: JsonObject) -> JsonObject:
    """A pod reduced to what the operator reads; `pod` itself is left as it was."""
    out: JsonObject = {"metadata": _metadata(_dict(pod.get("metadata")))}
    if (spec := _pod_spec(_dict(pod.get("spec")))) is not None:
        out["spec"] = spec
    if status := _pod_status(_dict(pod.get("status"))):
        out["status"] = status
    return out


def prune_podgroup(podgroup: JsonObject) -> JsonObject:
    """A Volcano PodGroup reduced to what the operator reads; `podgroup` itself is left as it was."""
    out: JsonObject = {"metadata": _metadata(_dict(podgroup.get("metadata")), labels=False)}
    spec = _dict(podgroup.get("spec"))
    if isinstance(spec.get("minResources"), dict):  # unhashable: not shared
        out["spec"] = {k: spec[k] for k in PODGROUP_SPEC if k in spec}
    else:
        owned = tuple((k, _s(spec[k])) for k in PODGROUP_SPEC if k in spec)
        out["spec"] = _shared.get(("podgroup-spec", owned), lambda: dict(owned))
    status = _dict(podgroup.get("status"))
    kept: JsonObject = {}
    if "phase" in status:
        kept["phase"] = _s(status["phase"])
    if conditions := _list(status.get("conditions")):
        kept["conditions"] = [{k: _s(c[k]) for k in _CONDITION if k in c} for c in map(_dict, conditions)]
    if kept:
        out["status"] = kept
    return out
