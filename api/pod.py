"""What a TorchJob adds to its worker pods: labels, volumes, mounts, placement, extra containers."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator

from api.base import KubeModel, OpenKubeModel
from api.cel import rule, rules
from api.constants import CHECKPOINT_VOLUME, PROGRESS_TOKEN_VOLUME, RESERVED_VOLUME_PREFIX, TRAINER_CONTAINER
from api.fields import AbsolutePath, DnsLabel, DnsSubdomain, StringMap, Unstructured, duplicates, map_list


class Toleration(KubeModel):
    """Lets worker pods run on nodes with a matching taint."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "!(has(self.operator) && self.operator == 'Exists' && has(self.value) && self.value != '')",
                "toleration value must be empty when operator is Exists",
                field_path=".value",
            ),
            rule(
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "toleration tolerationSeconds needs effect NoExecute",
                field_path=".tolerationSeconds",
            ),
        )
    )

    key: Annotated[str, StringConstraints(max_length=317)] | None = Field(
        default=None, description="Taint key; empty with operator Exists matches every taint."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default)."
    )
    value: Annotated[str, StringConstraints(max_length=63)] | None = Field(
        default=None, description="Taint value to match with operator Equal."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: StrictInt | None = Field(
        default=None,
        description="With effect NoExecute: how long the pod stays bound after the taint appears.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.operator == "Exists" and self.value:
            raise ValueError("toleration value must be empty when operator is Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("toleration tolerationSeconds needs effect NoExecute")
        return self


class VolumeMount(KubeModel):
    """Mounts one of `template.spec.volumes` into the trainer container."""

    name: DnsLabel = Field(description="Name of a volume in template.spec.volumes.")
    mount_path: AbsolutePath = Field(description="Absolute path in the container.")
    read_only: StrictBool | None = Field(default=None, description="Mount read-only.")
    sub_path: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Path within the volume to mount instead of its root."
    )


_RESERVED_VOLUME_MESSAGE = (
    f"volume names starting {RESERVED_VOLUME_PREFIX} are reserved for the operator ({CHECKPOINT_VOLUME} "
    f"mounts spec.checkpoint.volume, {PROGRESS_TOKEN_VOLUME} the progress token): rename it"
)


class Volume(OpenKubeModel):
    """A pod volume: a name plus one core volume source (persistentVolumeClaim, configMap, emptyDir, ...)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                f"!self.name.startsWith('{RESERVED_VOLUME_PREFIX}')",
                _RESERVED_VOLUME_MESSAGE,
                field_path=".name",
            )
        )
    )

    name: DnsLabel = Field(
        description=f"Volume name, unique in the pod (names starting {RESERVED_VOLUME_PREFIX} are reserved)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.name.startswith(RESERVED_VOLUME_PREFIX):
            raise ValueError(_RESERVED_VOLUME_MESSAGE)
        return self


class Container(OpenKubeModel):
    """An extra container of each worker pod, written as a core Container."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                f"self.name != '{TRAINER_CONTAINER}'",
                f"container name {TRAINER_CONTAINER} is reserved for the trainer",
                field_path=".name",
            )
        )
    )

    name: DnsLabel = Field(
        description=f"Container name, unique in the pod ({TRAINER_CONTAINER} is reserved)."
    )
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        description="Container image."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.name == TRAINER_CONTAINER:
            raise ValueError(f"container name {TRAINER_CONTAINER} is reserved for the trainer")
        return self


class LocalObjectReference(KubeModel):
    """Names an object in the job's namespace."""

    name: DnsSubdomain = Field(description="Object name.")


class PodOverlayMeta(KubeModel):
    """Labels and annotations added to every worker pod."""

    labels: StringMap | None = Field(default=None, description="Extra labels (Pyroclast's own labels win).")
    annotations: StringMap | None = Field(
        default=None, description="Extra annotations (Pyroclast's scheduling annotations win)."
    )


_MOUNTS_CEL = (
    "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
    "self.volumes.exists(v, v.name == m.name))"
)


class PodOverlaySpec(KubeModel):
    """Pod settings added to every worker pod. Pyroclast owns the scheduler, restart policy and hostnames."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                _MOUNTS_CEL,
                "every volumeMounts name must be a volume in template.spec.volumes",
                field_path=".volumeMounts",
            )
        )
    )

    service_account_name: DnsSubdomain | None = Field(
        default=None, description="Service account of the pods."
    )
    node_selector: StringMap | None = Field(default=None, description="Node labels the pods must land on.")
    tolerations: Annotated[list[Toleration], Field(max_length=64)] | None = Field(
        default=None, description="Taints the pods tolerate."
    )
    affinity: Unstructured | None = Field(
        default=None, description="A core Affinity (node, pod, anti-affinity)."
    )
    volumes: Annotated[list[Volume], Field(max_length=64)] | None = Field(
        default=None, description="Extra pod volumes.", json_schema_extra=map_list("name")
    )
    volume_mounts: Annotated[list[VolumeMount], Field(max_length=64)] | None = Field(
        default=None,
        description="Mounts of template.spec.volumes in the trainer container.",
        json_schema_extra=map_list("mountPath"),
    )
    init_containers: Annotated[list[Container], Field(max_length=16)] | None = Field(
        default=None,
        description="Init containers, run before the trainer.",
        json_schema_extra=map_list("name"),
    )
    sidecars: Annotated[list[Container], Field(max_length=16)] | None = Field(
        default=None,
        description="Extra containers running beside the trainer.",
        json_schema_extra=map_list("name"),
    )
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = Field(
        default=None, description="Secrets for pulling images.", json_schema_extra=map_list("name")
    )
    security_context: Unstructured | None = Field(default=None, description="A core PodSecurityContext.")
    runtime_class_name: DnsSubdomain | None = Field(default=None, description="RuntimeClass of the pods.")
    termination_grace_period_seconds: StrictInt | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Seconds between SIGTERM and SIGKILL on deletion or preemption; leave room for a "
        "checkpoint save.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for field, items in (
            ("volumes", self.volumes),
            ("initContainers", self.init_containers),
            ("sidecars", self.sidecars),
            ("imagePullSecrets", self.image_pull_secrets),
        ):
            if items and (repeated := duplicates(items, lambda item: item.name)):
                raise ValueError(f"{field}: duplicate name {repeated[0]}")
        if self.volume_mounts:
            if repeated := duplicates(self.volume_mounts, lambda m: m.mount_path):
                raise ValueError(f"volumeMounts: duplicate mountPath {repeated[0]}")
            names = {v.name for v in self.volumes or []}
            if any(m.name not in names for m in self.volume_mounts):
                raise ValueError("every volumeMounts name must be a volume in template.spec.volumes")
        return self


class PodTemplateOverlay(KubeModel):
    """Additions to the worker pods Pyroclast builds; the trainer container itself comes from the spec."""

    metadata: PodOverlayMeta | None = Field(default=None, description="Labels and annotations of the pods.")
    spec: PodOverlaySpec | None = Field(default=None, description="Pod-level settings.")
