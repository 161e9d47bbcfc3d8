"""TorchJobSpec: what to train, on how many nodes, and under which policies."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from api.base import KubeModel
from api.cel import rule, rules
from api.checkpoint import Checkpoint
from api.env import EnvVar
from api.fields import duplicates, map_list
from api.nodes import Nodes, NprocPerNode
from api.pod import PodTemplateOverlay, reserved_mount_error, reserved_mounts_rule
from api.policy import FailurePolicy, RunPolicy
from api.rendezvous import Rendezvous
from api.resources import ResourceRequirements
from api.runtime_ref import RuntimeRef
from api.scheduling import Scheduling
from api.sharedmemory import SharedMemory

# The first word of `command` may not be a launcher: Pyroclast starts torchrun, which starts Python.
LAUNCHERS: Final = ("torchrun", "python", "python3")
LAUNCHER_MESSAGE: Final = (
    "command is what torchrun runs (a script, or -m and a module); do not start it with torchrun or python"
)
SHAPE_MESSAGE: Final = "image and nprocPerNode can only change while the job is suspended"
IMAGE_MESSAGE: Final = "spec.image is required unless spec.runtimeRef names a runtime that sets it"

Arg = Annotated[str, StringConstraints(max_length=4096)]
SuccessPolicy = Literal["AllWorkers", "Rank0"]


class TorchJobSpec(KubeModel):
    """The desired state of a TorchJob."""

    model_config = ConfigDict(json_schema_extra=lambda schema: _image_from_runtime(schema))

    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None,
        description="Container image with torch and the training code. Changes only while suspended. "
        "Required unless the runtime (runtimeRef) sets it.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="Image pull policy of the trainer container."
    )
    command: Annotated[list[Arg], Field(min_length=1, max_length=64)] = Field(
        description="What torchrun starts on each process: a script path, or -m and a module, e.g. "
        "[-m, workloads.train]. The launcher flags come from the spec as PET_* variables.",
        json_schema_extra=rules(
            rule("!(self[0] in [" + ", ".join(f"'{w}'" for w in LAUNCHERS) + "])", LAUNCHER_MESSAGE)
        ),
    )
    args: Annotated[list[Arg], Field(max_length=256)] | None = Field(
        default=None, description="Arguments appended to command."
    )
    env: Annotated[list[EnvVar], Field(max_length=128)] | None = Field(
        default=None,
        description="Environment of the trainer container. PET_*, TORCHELASTIC_*, PYROCLAST_* and the "
        "variables torchrun sets are reserved.",
        json_schema_extra=map_list("name"),
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Resources of each node (one pod running nprocPerNode processes)."
    )
    nproc_per_node: NprocPerNode = Field(
        default="auto",
        description="Processes per node: a number, or auto (one per GPU, else one per CPU), gpu or cpu. "
        "Changes only while suspended.",
    )
    nodes: Nodes = Field(
        default_factory=Nodes,
        description="Node count: count alone for a fixed-size job, plus min and max for an elastic one.",
        json_schema_extra={"default": {}},
    )
    template: PodTemplateOverlay | None = Field(
        default=None,
        description="The worker pods' template: any core PodTemplateSpec field (containers, volumes, "
        "hostNetwork, affinity, topology spread, scheduling gates, ...) except those the operator owns.",
    )
    shared_memory: SharedMemory = Field(
        default_factory=SharedMemory,
        description="The trainer's memory-backed /dev/shm (on by default; half the memory limit).",
        json_schema_extra={"default": {}},
    )
    scheduling: Scheduling = Field(
        default_factory=Scheduling,
        description="Volcano queue, priority and preemptibility.",
        json_schema_extra={"default": {}},
    )
    checkpoint: Checkpoint | None = Field(
        default=None, description="Checkpoint volume and cadence, handed to the workload."
    )
    rendezvous: Rendezvous = Field(
        default_factory=Rendezvous,
        description="torchrun c10d rendezvous tuning.",
        json_schema_extra={"default": {}},
    )
    failure_policy: FailurePolicy = Field(
        default_factory=FailurePolicy,
        description="Gang restart budgets and exit code classes.",
        json_schema_extra={"default": {}},
    )
    run_policy: RunPolicy = Field(
        default_factory=RunPolicy,
        description="Suspension, deadline and clean-up.",
        json_schema_extra={"default": {}},
    )
    success_policy: SuccessPolicy = Field(
        default="AllWorkers",
        description="When the job has succeeded. AllWorkers: every worker exited 0 (an elastic job: the "
        "workers of the final rendezvous round). Rank0: worker 0 exited 0; the workers still running are "
        "then stopped (graceful pod deletion, whatever cleanPodPolicy says) and no other worker's exit code "
        "fails or restarts the job: worker 0's own failure follows failurePolicy.",
    )
    runtime_ref: RuntimeRef | None = Field(
        default=None,
        description="A ClusterTorchRuntime or TorchRuntime whose defaults (image, env, volumes, tolerations, "
        "queue, ...) this job starts from; the job's own fields win unless the runtime locks them. Resolved "
        "once, on the job's first reconcile (status.runtime): editing the runtime later never changes it.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.image is None and self.runtime_ref is None:
            raise ValueError(IMAGE_MESSAGE)
        if self.command[0] in LAUNCHERS:
            raise ValueError(LAUNCHER_MESSAGE)
        if self.env and (repeated := duplicates(self.env, lambda e: e.name)):
            raise ValueError(f"env: duplicate name {repeated[0]}")
        checkpoint_path = self.checkpoint.path if self.checkpoint is not None else None
        if error := reserved_mount_error(self.template, checkpoint_path, self.shared_memory.enabled):
            raise ValueError(error)
        return self

    def update_errors(self, old: TorchJobSpec) -> list[str]:
        """What the apiserver's transition rules refuse when `old` is updated to this spec."""
        errors: list[str] = []
        if not old.run_policy.suspend and (
            self.image != old.image or not _same_value(self.nproc_per_node, old.nproc_per_node)
        ):
            errors.append(SHAPE_MESSAGE)
        errors.extend(self.nodes.update_errors(old.nodes))
        if self.scheduling.queue != old.scheduling.queue:
            errors.append("scheduling.queue is immutable")
        if (
            self.checkpoint is not None
            and old.checkpoint is not None
            and self.checkpoint.path != old.checkpoint.path
        ):
            errors.append("checkpoint.path is immutable")
        return errors


def _image_from_runtime(schema: dict[str, Any]) -> None:
    """The spec's CEL rules. A job may leave its image to its runtime: required only without a runtimeRef (the
    effective spec, the runtime merged in, always has one: the operator checks it before building pods)."""
    schema.update(
        rules(
            rule(
                "(has(oldSelf.runPolicy) && oldSelf.runPolicy.suspend) || "
                "((has(self.image) ? self.image : '') == (has(oldSelf.image) ? oldSelf.image : '') && "
                "self.nprocPerNode == oldSelf.nprocPerNode)",
                SHAPE_MESSAGE,
            ),
            rule("has(self.image) || has(self.runtimeRef)", IMAGE_MESSAGE),
            reserved_mounts_rule(),
        )
    )


def _same_value(a: int | str, b: int | str) -> bool:
    # CEL compares an int with a string as unequal; so must we (1 == True in Python is not a concern here).
    return type(a) is type(b) and a == b
