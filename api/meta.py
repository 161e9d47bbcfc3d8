"""The small part of Kubernetes' object metadata (`metav1`) that Pyroclast reads and writes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, StrictBool, StrictInt

from api.base import KubeModel, OpenKubeModel


class OwnerReference(KubeModel):
    """An object that owns this one; the garbage collector deletes this object after its controller owner."""

    api_version: str = Field(description="API version of the owner.")
    kind: str = Field(description="Kind of the owner.")
    name: str = Field(description="Name of the owner.")
    uid: str = Field(description="UID of the owner.")
    controller: StrictBool | None = Field(
        default=None, description="Whether the owner is the managing controller."
    )
    block_owner_deletion: StrictBool | None = Field(
        default=None, description="Whether foreground deletion of the owner waits for this object."
    )


class ObjectMeta(OpenKubeModel):
    """Object metadata. Fields Pyroclast does not use (managedFields, ...) are kept as they came."""

    name: str | None = Field(default=None, description="Name, unique within the namespace.")
    generate_name: str | None = Field(default=None, description="Prefix the apiserver completes into a name.")
    namespace: str | None = Field(default=None, description="Namespace of a namespaced object.")
    uid: str | None = Field(default=None, description="Unique id the apiserver assigns.")
    resource_version: str | None = Field(
        default=None, description="Opaque version for optimistic concurrency."
    )
    generation: StrictInt | None = Field(default=None, description="Sequence number of spec changes.")
    creation_timestamp: datetime | None = Field(default=None, description="When the object was created.")
    deletion_timestamp: datetime | None = Field(default=None, description="When deletion was requested.")
    labels: dict[str, str] | None = Field(default=None, description="Labels for selection.")
    annotations: dict[str, str] | None = Field(default=None, description="Unstructured annotations.")
    owner_references: list[OwnerReference] | None = Field(default=None, description="Owners of this object.")
    finalizers: list[str] | None = Field(default=None, description="Finalizers blocking deletion.")


class ConditionStatus(StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


class Condition(KubeModel):
    """One aspect of the object's state, in the shape of Kubernetes' `metav1.Condition`."""

    type: str = Field(
        max_length=316, pattern=CONDITION_TYPE_PATTERN, description="Condition type, in CamelCase."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: StrictInt | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was computed from."
    )
    last_transition_time: datetime = Field(description="When the status last changed.")
    reason: str = Field(
        max_length=1024,
        min_length=1,
        pattern=REASON_PATTERN,
        description="Machine-readable CamelCase reason.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
