"""The worker pod template: a core PodTemplateSpec, less what the operator owns.

Everything a core/v1 PodTemplateSpec holds for a pod reaches every worker pod as written (Kubernetes' own
types pass through unmodelled: the apiserver validates them, and the operator dry-runs the first worker of a
new job so a refusal shows on the job at once). The operator owns only what its contract with the pods needs,
and refuses it here, at admission: its labels and annotations (they select the pods and tie them to the
Volcano gang), ``schedulerName``, ``priorityClassName`` and ``nodeName`` (Volcano places the whole gang),
``restartPolicy`` (the operator restarts the gang), ``hostname`` and ``subdomain`` (each worker's DNS name is
its rendezvous address), and of the trainer container (the ``containers`` entry named ``trainer``) what the
TorchJob spec says: its image, command, args, resources, launcher env and termination message; reserved
volume names and the operator's mount paths too. Two fields are Pyroclast's own: ``volumeMounts`` (mounts of
the trainer container) and ``sidecars`` (containers beside the trainer), both kept for manifests that use
them; ``containers`` does the same in core form.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Self

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator

from api.base import KubeModel, OpenKubeModel
from api.cel import rule, rules
from api.constants import (
    CHECKPOINT_VOLUME,
    LABEL_ATTEMPT,
    LABEL_JOB_NAME,
    LABEL_MANAGED_BY,
    LABEL_REPLICA_INDEX,
    PROGRESS_TOKEN_VOLUME,
    RESERVED_VOLUME_PREFIX,
    SHARED_MEMORY_PATH,
    TRAINER_CONTAINER,
    is_reserved_env,
)
from api.contract import PROGRESS_TOKEN_DIR
from api.env import reserved_env_cel
from api.fields import (
    AbsolutePath,
    DnsLabel,
    DnsSubdomain,
    ShortString,
    StringMap,
    Unstructured,
    duplicates,
    map_list,
)
from api.podgroup import GROUP_NAME_ANNOTATION, PREEMPTABLE_ANNOTATION, TASK_SPEC_KEY


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


OWNED_LABELS: Final = (LABEL_JOB_NAME, LABEL_REPLICA_INDEX, LABEL_ATTEMPT, LABEL_MANAGED_BY)
"""Pod labels the operator sets: they select the job's workers (and the scale subresource's count)."""
OWNED_ANNOTATIONS: Final = (GROUP_NAME_ANNOTATION, TASK_SPEC_KEY, PREEMPTABLE_ANNOTATION)
"""Pod annotations the operator sets: they put the pod in the job's Volcano gang."""


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


_OWNED_LABELS_MESSAGE: Final = (
    f"template.metadata.labels {', '.join(OWNED_LABELS)} are set by the operator: they select the job's pods"
)
_OWNED_ANNOTATIONS_MESSAGE: Final = (
    f"template.metadata.annotations {', '.join(OWNED_ANNOTATIONS)} are set by the operator: they put the "
    "pods in the job's Volcano gang"
)


class PodOverlayMeta(KubeModel):
    """Labels and annotations added to every worker pod (the operator's own keys are refused)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                f"!has(self.labels) || self.labels.all(k, !(k in {_cel_list(OWNED_LABELS)}))",
                _OWNED_LABELS_MESSAGE,
                field_path=".labels",
            ),
            rule(
                f"!has(self.annotations) || self.annotations.all(k, !(k in {_cel_list(OWNED_ANNOTATIONS)}))",
                _OWNED_ANNOTATIONS_MESSAGE,
                field_path=".annotations",
            ),
        )
    )

    labels: StringMap | None = Field(default=None, description="Extra labels of the pods.")
    annotations: StringMap | None = Field(default=None, description="Extra annotations of the pods.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.labels and any(k in OWNED_LABELS for k in self.labels):
            raise ValueError(_OWNED_LABELS_MESSAGE)
        if self.annotations and any(k in OWNED_ANNOTATIONS for k in self.annotations):
            raise ValueError(_OWNED_ANNOTATIONS_MESSAGE)
        return self


_TRAINER_OWNED: Final = {
    "image": "set spec.image",
    "command": "the trainer runs torchrun with spec.command",
    "args": "set spec.args",
    "imagePullPolicy": "set spec.imagePullPolicy",
    "resources": "set spec.resources",
    "terminationMessagePath": "the operator reads the worker's report from it",
    "terminationMessagePolicy": "the operator reads the worker's report from it",
}
"""Fields of the trainer container the TorchJob spec or the contract sets, and where to set them instead."""


def trainer_owned_message(field: str) -> str:
    """The complaint about the template's trainer container setting `field`."""
    return f"containers[{TRAINER_CONTAINER}].{field} is owned by the operator: {_TRAINER_OWNED[field]}"


TRAINER_ENV_MESSAGE: Final = (
    f"containers[{TRAINER_CONTAINER}].env: PET_*, TORCHELASTIC_*, PYROCLAST_* and the variables torchrun "
    "sets are reserved: Pyroclast sets them for torchrun and the workload"
)
CONTAINER_IMAGE_MESSAGE: Final = f"containers: image is required for every container but {TRAINER_CONTAINER}"


class ContainerEnvVar(OpenKubeModel):
    """A core EnvVar of a template container (typed by name only, so admission can check the name)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="Variable name."
    )


Items = Annotated[list[Unstructured], Field(max_length=64)]
"""A list of core objects passed through as written."""


class ContainerVolumeMount(OpenKubeModel):
    """A core VolumeMount of a template container (name and path typed: admission checks the path)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(description="Volume name.")
    mount_path: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        description="Path in the container."
    )


class PodContainer(OpenKubeModel):
    """A core Container. The one named ``trainer`` adds to the trainer container (securityContext,
    ports, probes, volumeMounts, envFrom, env, ...); its image, command, args, resources, launcher env and
    termination message are the TorchJob spec's. Any other name is an extra container beside the trainer."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                f"self.name == '{TRAINER_CONTAINER}' || has(self.image)",
                CONTAINER_IMAGE_MESSAGE,
                field_path=".image",
            ),
            *(
                rule(
                    f"self.name != '{TRAINER_CONTAINER}' || !has(self.{field})",
                    trainer_owned_message(field),
                    field_path=f".{field}",
                )
                for field in _TRAINER_OWNED
            ),
            rule(
                f"self.name != '{TRAINER_CONTAINER}' || !has(self.env) || "
                f"self.env.all(e, !({reserved_env_cel('e.name')}))",
                TRAINER_ENV_MESSAGE,
                field_path=".env",
            ),
        )
    )

    name: DnsLabel = Field(
        description=f"Container name, unique in the pod; {TRAINER_CONTAINER}: the trainer."
    )
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None, description="Container image (the trainer's is spec.image)."
    )
    command: Annotated[list[ShortString], Field(max_length=256)] | None = Field(
        default=None, description="Entrypoint (the trainer's is torchrun with spec.command)."
    )
    args: Annotated[list[ShortString], Field(max_length=256)] | None = Field(
        default=None, description="Arguments (the trainer's are spec.args)."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="Image pull policy (the trainer's is spec.imagePullPolicy)."
    )
    resources: Unstructured | None = Field(
        default=None, description="A core ResourceRequirements (the trainer's are spec.resources)."
    )
    env: Annotated[list[ContainerEnvVar], Field(max_length=128)] | None = Field(
        default=None,
        description="Environment; the trainer's is added after spec.env (reserved names refused).",
    )
    termination_message_path: ShortString | None = Field(
        default=None, description="Termination message file (the trainer's is the operator's)."
    )
    termination_message_policy: ShortString | None = Field(
        default=None, description="Termination message policy (the trainer's is the operator's)."
    )
    volume_mounts: Annotated[list[ContainerVolumeMount], Field(max_length=64)] | None = Field(
        default=None, description="Core VolumeMounts of this container."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.name != TRAINER_CONTAINER:
            if self.image is None:
                raise ValueError(CONTAINER_IMAGE_MESSAGE)
            return self
        written = self.to_k8s()
        for field in _TRAINER_OWNED:
            if field in written:
                raise ValueError(trainer_owned_message(field))
        if any(is_reserved_env(e.name) for e in self.env or []):
            raise ValueError(TRAINER_ENV_MESSAGE)
        return self


OWNED_POD_FIELDS: Final = {
    "schedulerName": "is set by the operator: Volcano schedules the workers as one gang",
    "priorityClassName": "is set from spec.scheduling.priorityClassName (the PodGroup carries it too): "
    "set it there",
    "priority": "is computed by the apiserver from the priority class: set spec.scheduling.priorityClassName",
    "nodeName": "would bypass Volcano's gang scheduling: use nodeSelector or affinity",
    "restartPolicy": "is set by the operator (Never): it restarts the whole gang itself, see "
    "spec.failurePolicy",
    "hostname": "is set by the operator: each worker's stable DNS name is its rendezvous address",
    "subdomain": "is set by the operator: the job's headless Service gives the workers their DNS names",
}
"""Pod fields the operator owns, and why; a template setting one is refused at admission."""


def owned_pod_field_message(field: str) -> str:
    """The complaint about the template setting the operator-owned pod field `field`."""
    return f"template.spec.{field} {OWNED_POD_FIELDS[field]}"


_MOUNTS_CEL = (
    "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
    "self.volumes.exists(v, v.name == m.name))"
)
_OWNED_DOC: Final = " Owned by the operator: setting it is refused."


def _owned(what: str) -> Any:
    return Field(default=None, description=what + _OWNED_DOC)


class PodOverlaySpec(KubeModel):
    """A core PodSpec of every worker pod, less the fields the operator owns (refused here, with the reason).

    Kubernetes' own types pass through unmodelled, so every field of the pod's API is accepted; the apiserver
    validates them when the pods are created (and in the operator's dry-run of the first worker).
    """

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                _MOUNTS_CEL,
                "every volumeMounts name must be a volume in template.spec.volumes",
                field_path=".volumeMounts",
            ),
            *(
                rule(f"!has(self.{field})", owned_pod_field_message(field), field_path=f".{field}")
                for field in OWNED_POD_FIELDS
            ),
        )
    )

    # --- the operator's own (refused) ---
    scheduler_name: ShortString | None = _owned("Scheduler of the pods (Volcano).")
    priority_class_name: ShortString | None = _owned("Priority class (spec.scheduling.priorityClassName).")
    priority: StrictInt | None = _owned("Pod priority (the apiserver computes it from the class).")
    node_name: ShortString | None = _owned("Node to bind to (Volcano binds the gang).")
    restart_policy: ShortString | None = _owned("Restart policy (Never: the operator restarts the gang).")
    hostname: ShortString | None = _owned("Pod hostname (each worker's stable DNS name).")
    subdomain: ShortString | None = _owned("Pod subdomain (the job's headless Service).")

    # --- Pyroclast's own additions ---
    volume_mounts: Annotated[list[VolumeMount], Field(max_length=64)] | None = Field(
        default=None,
        description="Mounts of template.spec.volumes in the trainer container.",
        json_schema_extra=map_list("mountPath"),
    )
    sidecars: Annotated[list[Container], Field(max_length=16)] | None = Field(
        default=None,
        description="Extra containers running beside the trainer (as entries of containers).",
        json_schema_extra=map_list("name"),
    )

    # --- core PodSpec, passed through ---
    containers: Annotated[list[PodContainer], Field(max_length=16)] | None = Field(
        default=None,
        description=f"Core Containers: {TRAINER_CONTAINER} adds to the trainer container, any other name "
        "is an extra container.",
        json_schema_extra=map_list("name"),
    )
    init_containers: Annotated[list[Container], Field(max_length=16)] | None = Field(
        default=None,
        description="Init containers, run before the trainer (restartPolicy Always: native sidecars).",
        json_schema_extra=map_list("name"),
    )
    volumes: Annotated[list[Volume], Field(max_length=64)] | None = Field(
        default=None,
        description="Extra pod volumes, any core volume source.",
        json_schema_extra=map_list("name"),
    )
    service_account_name: DnsSubdomain | None = Field(
        default=None, description="Service account of the pods."
    )
    service_account: DnsSubdomain | None = Field(
        default=None, description="Deprecated alias of serviceAccountName."
    )
    automount_service_account_token: StrictBool | None = Field(
        default=None,
        description="Mount the service account's API token (default: only when an account is named).",
    )
    node_selector: StringMap | None = Field(default=None, description="Node labels the pods must land on.")
    tolerations: Annotated[list[Toleration], Field(max_length=64)] | None = Field(
        default=None, description="Taints the pods tolerate."
    )
    affinity: Unstructured | None = Field(
        default=None, description="A core Affinity (node, pod, anti-affinity)."
    )
    topology_spread_constraints: Items | None = Field(
        default=None, description="Core TopologySpreadConstraints."
    )
    scheduling_gates: Items | None = Field(default=None, description="Core PodSchedulingGates.")
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
    active_deadline_seconds: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Seconds a pod may run (spec.runPolicy.activeDeadlineSeconds: the job).",
    )
    host_network: StrictBool | None = Field(
        default=None,
        description="Use the node's network (RDMA/InfiniBand): the operator then allocates the job's "
        "rendezvous port (status.ports) and defaults dnsPolicy to ClusterFirstWithHostNet.",
    )
    host_ipc: StrictBool | None = Field(
        default=None, alias="hostIPC", description="Use the node's IPC namespace."
    )
    host_pid: StrictBool | None = Field(
        default=None, alias="hostPID", description="Use the node's PID namespace."
    )
    host_users: StrictBool | None = Field(default=None, description="Use the node's user namespace.")
    share_process_namespace: StrictBool | None = Field(
        default=None, description="One PID namespace for all containers of the pod."
    )
    dns_policy: Literal["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] | None = Field(
        default=None, description="DNS policy (with hostNetwork the default is ClusterFirstWithHostNet)."
    )
    dns_config: Unstructured | None = Field(default=None, description="A core PodDNSConfig.")
    host_aliases: Items | None = Field(default=None, description="Core HostAliases (/etc/hosts entries).")
    set_hostname_as_fqdn: StrictBool | None = Field(
        default=None, alias="setHostnameAsFQDN", description="Use the FQDN as the pod's hostname."
    )
    enable_service_links: StrictBool | None = Field(
        default=None, description="Service environment variables (default false: workers need none)."
    )
    preemption_policy: Literal["PreemptLowerPriority", "Never"] | None = Field(
        default=None, description="Whether the pods may preempt lower-priority pods."
    )
    overhead: Unstructured | None = Field(
        default=None, description="Pod overhead (normally set by RuntimeClass admission)."
    )
    readiness_gates: Items | None = Field(default=None, description="Core PodReadinessGates.")
    os: Unstructured | None = Field(default=None, description="A core PodOS.")
    resource_claims: Items | None = Field(default=None, description="Core PodResourceClaims (DRA).")
    resources: Unstructured | None = Field(
        default=None, description="Pod-level core ResourceRequirements (shared by all containers)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        written = self.to_k8s()
        for field in OWNED_POD_FIELDS:
            if field in written:
                raise ValueError(owned_pod_field_message(field))
        for field, items in (
            ("volumes", self.volumes),
            ("containers", self.containers),
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

    def trainer(self) -> PodContainer | None:
        """The ``containers`` entry that adds to the trainer container, if any."""
        return next((c for c in self.containers or [] if c.name == TRAINER_CONTAINER), None)

    def trainer_mount_paths(self) -> list[str]:
        """Every path the template mounts in the trainer container."""
        paths = [m.mount_path for m in self.volume_mounts or []]
        trainer = self.trainer()
        if trainer is not None:
            paths.extend(m.mount_path for m in trainer.volume_mounts or [])
        return paths


class PodTemplateOverlay(KubeModel):
    """A core PodTemplateSpec of the worker pods, less what the operator owns; the trainer container itself
    comes from the spec (its ``containers`` entry named trainer adds to it)."""

    metadata: PodOverlayMeta | None = Field(default=None, description="Labels and annotations of the pods.")
    spec: PodOverlaySpec | None = Field(default=None, description="The pod spec (core PodSpec fields).")


def reserved_mount_paths_cel(spec: str) -> str:
    """CEL over the TorchJobSpec `spec`: the mount paths the operator uses in the trainer container."""
    return (
        f"['{PROGRESS_TOKEN_DIR}']"
        f" + (has({spec}.checkpoint) && has({spec}.checkpoint.path) ? [{spec}.checkpoint.path] : [])"
        f" + (!has({spec}.sharedMemory) || !has({spec}.sharedMemory.enabled) || {spec}.sharedMemory.enabled"
        f" ? ['{SHARED_MEMORY_PATH}'] : [])"
    )


RESERVED_MOUNT_MESSAGE: Final = (
    "template: a trainer volumeMount uses a path the operator mounts (spec.checkpoint.path, "
    f"{SHARED_MEMORY_PATH} unless sharedMemory.enabled is false, {PROGRESS_TOKEN_DIR}): change the mountPath "
    "(or size /dev/shm with spec.sharedMemory)"
)


def reserved_mounts_rule() -> dict[str, Any]:
    """The TorchJobSpec rule refusing template mounts of the trainer at the operator's paths."""
    reserved = reserved_mount_paths_cel("self")
    t = "self.template.spec"
    return rule(
        f"!has(self.template) || !has({t}) || ("
        f"(!has({t}.volumeMounts) || {t}.volumeMounts.all(m, !(m.mountPath in {reserved}))) && "
        f"(!has({t}.containers) || {t}.containers.all(c, c.name != '{TRAINER_CONTAINER}' || "
        f"!has(c.volumeMounts) || c.volumeMounts.all(m, !(m.mountPath in {reserved})))))",
        RESERVED_MOUNT_MESSAGE,
        field_path=".template",
    )


def reserved_mount_error(
    template: PodTemplateOverlay | None, checkpoint_path: str | None, shared_memory: bool
) -> str | None:
    """The pydantic side of :func:`reserved_mounts_rule`."""
    if template is None or template.spec is None:
        return None
    reserved = {
        PROGRESS_TOKEN_DIR,
        *([checkpoint_path] if checkpoint_path else []),
        *([SHARED_MEMORY_PATH] if shared_memory else []),
    }
    if any(p in reserved for p in template.spec.trainer_mount_paths()):
        return RESERVED_MOUNT_MESSAGE
    return None
