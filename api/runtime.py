"""Runtimes: what a platform team sets once for many TorchJobs (image, NCCL env, datasets, tolerations).

A `ClusterTorchRuntime` (cluster-scoped) or a `TorchRuntime` (in the job's namespace) holds `defaults`, any
part of a TorchJob spec, and `locked`, the paths of it a job may not change. A job names one with
`spec.runtimeRef`; the operator resolves it once, on the job's first reconcile, and keeps what it read in the
job's `status.runtime` (:class:`RuntimeRecord`): see :mod:`controller.torchjob.runtime` for why there.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import Field, StrictInt, StringConstraints, ValidationError, model_validator

from api.base import KubeModel
from api.constants import API_VERSION
from api.fields import Unstructured, duplicates
from api.meta import ObjectMeta
from api.runtime_merge import LOCKED_PATH_PATTERN, RUNTIME_REF, parse_path
from api.spec import TorchJobSpec


class RuntimeKind(StrEnum):
    """The two kinds of runtime a job may name."""

    CLUSTER = "ClusterTorchRuntime"
    NAMESPACED = "TorchRuntime"


CLUSTER_PLURAL: Final = "clustertorchruntimes"
NAMESPACED_PLURAL: Final = "torchruntimes"
RUNTIME_SHORT_NAMES: Final[dict[RuntimeKind, tuple[str, ...]]] = {
    RuntimeKind.CLUSTER: ("ctr",),
    RuntimeKind.NAMESPACED: ("tr",),
}
RUNTIME_PLURALS: Final[dict[RuntimeKind, str]] = {
    RuntimeKind.CLUSTER: CLUSTER_PLURAL,
    RuntimeKind.NAMESPACED: NAMESPACED_PLURAL,
}

LOCKED_MESSAGE: Final = (
    "locked: each entry is a TorchJob spec path such as scheduling.queue, template.spec.tolerations or "
    "env[NCCL_IB_HCA] (dotted camelCase fields; [NAME] picks a named list item)"
)
DEFAULTS_REF_MESSAGE: Final = "defaults.runtimeRef: a runtime cannot name another runtime"


def lockable_fields() -> list[str]:
    """The TorchJob spec fields (wire names) a runtime may set and lock: all but runtimeRef."""
    names = (f.alias or n for n, f in TorchJobSpec.model_fields.items())
    return [n for n in names if n != RUNTIME_REF]


LockedPath = Annotated[str, StringConstraints(pattern=LOCKED_PATH_PATTERN, max_length=256)]


class TorchRuntimeSpec(KubeModel):
    """What every job naming this runtime starts from, and what it may not change."""

    defaults: Unstructured | None = Field(
        default=None,
        description="Any part of a TorchJob spec (image, env, template volumes/tolerations/nodeSelector, "
        "scheduling queue and priorityClassName, failurePolicy, rendezvous, ...). A job's own values win "
        "unless locked; objects merge by key, named lists (env, volumes) by name. Checked against the "
        "TorchJob schema when a job is resolved against it.",
    )
    locked: Annotated[list[LockedPath], Field(max_length=64)] | None = Field(
        default=None,
        description="Spec paths a job may not set to another value, e.g. scheduling.queue, "
        "template.spec.tolerations, env[NCCL_IB_HCA]. A job that does is refused (its RuntimeResolved "
        "condition names the path).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.defaults is not None and RUNTIME_REF in self.defaults:
            raise ValueError(DEFAULTS_REF_MESSAGE)
        for key, value in (self.defaults or {}).items():
            _check_default(key, value)
        for path in self.locked or []:
            if parse_path(path)[0].field not in lockable_fields():
                raise ValueError(LOCKED_MESSAGE)
        if self.locked and (repeated := duplicates(self.locked, lambda p: p)):
            raise ValueError(f"locked: duplicate path {repeated[0]}")
        return self

    def digest(self) -> str:
        """A short hash of the spec as the apiserver serves it (key order does not matter)."""
        body = json.dumps(self.to_k8s(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def _check_default(key: str, value: Any) -> None:
    """One field of `defaults` as the TorchJob spec would take it (the apiserver checks the same with the
    spec's schema); cross-field rules wait for the merged spec."""
    if key not in lockable_fields():
        raise ValueError(f"defaults.{key}: unknown field (a runtime's defaults are TorchJob spec fields)")
    try:
        TorchJobSpec.model_validate({"image": "i", "command": ["c"], key: value})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"defaults.{where}: {first['msg']}") from None


class _Runtime(KubeModel):
    api_version: Literal["pyroclast.dev/v1alpha1"] = Field(default=API_VERSION, description="API version.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: TorchRuntimeSpec = Field(
        default_factory=TorchRuntimeSpec,
        description="Defaults for jobs naming this runtime, and the paths they may not change.",
        json_schema_extra={"default": {}},
    )

    @classmethod
    def from_k8s(cls, obj: dict[str, Any]) -> Self:
        """Parse an object as the apiserver returns it."""
        return cls.model_validate(obj)


class ClusterTorchRuntime(_Runtime):
    """Cluster-wide TorchJob defaults a platform team sets once: NCCL env, datasets, tolerations, queue."""

    kind: Literal["ClusterTorchRuntime"] = Field(default="ClusterTorchRuntime", description="Kind.")


class TorchRuntime(_Runtime):
    """TorchJob defaults for the jobs of one namespace; same fields as a ClusterTorchRuntime."""

    kind: Literal["TorchRuntime"] = Field(default="TorchRuntime", description="Kind.")


class RuntimeRecord(KubeModel):
    """The runtime a job was resolved against, as it was then: the job keeps running with this even when the
    runtime is edited or deleted."""

    kind: Literal["ClusterTorchRuntime", "TorchRuntime"] = Field(description="Kind of the runtime.")
    name: Annotated[str, StringConstraints(max_length=253)] = Field(description="Name of the runtime.")
    generation: StrictInt | None = Field(default=None, ge=0, description="The runtime's metadata.generation.")
    hash: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="Hash of the runtime's spec as read (sha256, 16 hex digits)."
    )
    resolved_time: datetime | None = Field(default=None, description="When the job was resolved.")
    spec: Unstructured = Field(
        description="The runtime's spec as read (defaults and locked): the job's effective spec is always "
        "this merged with the job's own spec."
    )
