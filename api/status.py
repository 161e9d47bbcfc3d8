"""TorchJobStatus: what the operator observed, written only through the /status subresource."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import Field, StrictInt

from api.accounting import Goodput, Usage
from api.base import KubeModel
from api.fields import map_list
from api.meta import Condition
from api.ports import JobPorts
from api.runtime import RuntimeRecord

Count = Annotated[StrictInt, Field(ge=0)]


class Phase(StrEnum):
    """The job's place in its lifecycle."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    PREEMPTED = "Preempted"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CREATE_FAILED = "CreateFailed"

    @property
    def finished(self) -> bool:
        """Whether the phase is terminal."""
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class ConditionType(StrEnum):
    """Condition types the operator sets on a TorchJob."""

    QUEUED = "Queued"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    PREEMPTED = "Preempted"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CREATE_FAILED = "CreateFailed"
    """True while the apiserver refuses a create the job needs (its PodGroup, Service or a worker pod): the
    reason names the kind (FailedCreatePod, ...), the message quotes the apiserver; False once a create
    succeeds."""
    RUNTIME_RESOLVED = "RuntimeResolved"
    """Only for a job with spec.runtimeRef: True once the runtime was read and merged (status.runtime);
    False while the runtime is missing (retried with backoff), a locked field is overridden or the merged
    spec is invalid, the reason saying which."""


HISTORY: Final = 10
"""Entries kept in status.disruptions and status.resizes (the newest)."""

Reason = Annotated[str, Field(max_length=256)]


class DisruptionKind(StrEnum):
    """What pushed a worker off its node (never a crash of the workload)."""

    PREEMPTION = "Preemption"
    EVICTION = "Eviction"
    NODE_LOST = "NodeLost"


class Disruption(KubeModel):
    """A worker the scheduler, the kubelet or a lost node took away."""

    time: datetime = Field(description="When the operator saw it.")
    kind: DisruptionKind = Field(description="Preemption (scheduler preempt/reclaim), Eviction or NodeLost.")
    reason: Reason = Field(description="The reason as reported, e.g. PreemptionByScheduler or Evicted.")
    pod: Annotated[str, Field(max_length=253)] = Field(description="The worker pod.")
    pod_uid: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The pod's UID, when it was still there to read."
    )
    message: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="The reporter's explanation, e.g. the scheduler's Evict event."
    )
    action: Literal["Restarted", "Shrunk"] = Field(
        description="Restarted: the whole gang restarted (below nodes.min, or a fixed-size job); Shrunk: an "
        "elastic job kept running on the remaining nodes."
    )


class Resize(KubeModel):
    """A change of a running elastic job's node count, in place (no gang restart)."""

    time: datetime = Field(description="When the operator saw it.")
    from_nodes: Count = Field(description="Nodes in the rendezvous before.")
    to_nodes: Count = Field(description="Nodes in the rendezvous after.")
    cause: Reason = Field(description="Why, e.g. Preemption, NodeLost or CapacityReturned.")


class CheckpointStatus(KubeModel):
    """The newest checkpoint the workload committed, as its workers reported it on exit (termination
    message); restarted workers get its path as PYROCLAST_RESUME_FROM."""

    step: Count = Field(description="Training step of the checkpoint.")
    time: datetime | None = Field(default=None, description="When it was committed.")
    path: Annotated[str, Field(max_length=4096)] | None = Field(
        default=None,
        description="Its directory in the trainer container: <checkpoint.path>/step-<12-digit step>.",
    )


class Progress(KubeModel):
    """Training progress as the workload last reported it: live through the operator's progress endpoint when
    enabled, else the termination message of its latest exit."""

    step: Count = Field(description="Current training step.")
    total_steps: Count | None = Field(default=None, description="Steps the run will take, when known.")
    loss: float | None = Field(default=None, allow_inf_nan=False, description="Most recent training loss.")
    updated_time: datetime | None = Field(default=None, description="When the workload reported this.")


class TorchJobStatus(KubeModel):
    """The observed state of a TorchJob."""

    phase: Phase | None = Field(
        default=None,
        description="Pending, Queued (PodGroup waiting in Volcano), Running, Restarting, Preempted (gang "
        "restarted after a preemption, waiting for capacity), CreateFailed (the apiserver refuses the job's "
        "PodGroup, Service or worker pods, e.g. quota, Pod Security, a missing priority class; the "
        "CreateFailed condition quotes it; retried with backoff), Suspended, Succeeded or Failed.",
    )
    conditions: Annotated[list[Condition], Field(max_length=16)] | None = Field(
        default=None, description="Conditions, one per type.", json_schema_extra=map_list("type")
    )
    observed_generation: Count | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )
    desired_nodes: Count | None = Field(default=None, description="Worker pods the operator wants now.")
    active_nodes: Count | None = Field(default=None, description="Worker pods created and not finished.")
    ready_nodes: Count | None = Field(default=None, description="Worker pods running and ready.")
    world_size: Count | None = Field(
        default=None, description="Processes in the current rendezvous (nodes x processes per node)."
    )
    selector: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Label selector of the worker pods, for the scale subresource."
    )
    failure_restarts: Count = Field(default=0, description="Gang restarts spent on failures.")
    preemption_restarts: Count = Field(
        default=0, description="Gang restarts caused by preemption or eviction."
    )
    last_disruption_reason: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Why the gang last restarted, e.g. PreemptedByScheduler or ExitCode137."
    )
    last_disruption_time: datetime | None = Field(default=None, description="When the gang last restarted.")
    disruptions: Annotated[list[Disruption], Field(max_length=HISTORY)] | None = Field(
        default=None, description=f"The newest {HISTORY} preemptions, evictions, node losses; oldest first."
    )
    resizes: Annotated[list[Resize], Field(max_length=HISTORY)] | None = Field(
        default=None, description=f"The newest {HISTORY} in-place resizes of an elastic job, oldest first."
    )
    last_checkpoint: CheckpointStatus | None = Field(default=None, description="Newest committed checkpoint.")
    progress: Progress | None = Field(default=None, description="Latest training progress.")
    start_time: datetime | None = Field(default=None, description="When the job first started running.")
    completion_time: datetime | None = Field(default=None, description="When the job succeeded or failed.")
    pod_group_name: Annotated[str, Field(max_length=253)] | None = Field(
        default=None, description="Name of the Volcano PodGroup of the current attempt."
    )
    usage: Usage | None = Field(
        default=None, description="Resources the worker pods held, every attempt together, and their cost."
    )
    goodput: Goodput | None = Field(
        default=None, description="Time since the gang first ran: productive, or lost by cause."
    )
    runtime: RuntimeRecord | None = Field(
        default=None,
        description="The runtime (spec.runtimeRef) as read on the job's first reconcile: name, generation, "
        "hash and spec. The job runs with it even after the runtime is edited or deleted.",
    )
    ports: JobPorts | None = Field(
        default=None,
        description="With hostNetwork: the host ports the operator allocated to this job's workers.",
    )

    def condition(self, type_: str) -> Condition | None:
        """The condition of `type_`, if present."""
        return next((c for c in self.conditions or [] if c.type == type_), None)
