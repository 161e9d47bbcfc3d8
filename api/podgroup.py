"""Volcano's PodGroup (scheduling.volcano.sh/v1beta1): the gang a TorchJob's pods are scheduled as."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StrictInt

from api.base import KubeModel, OpenKubeModel
from api.constants import VOLCANO_API_VERSION
from api.meta import ObjectMeta
from api.quantity import Quantity

# Annotations and labels Volcano reads on pods and PodGroups.
GROUP_NAME_ANNOTATION = "scheduling.k8s.io/group-name"
TASK_SPEC_KEY = "volcano.sh/task-spec"
PREEMPTABLE_ANNOTATION = "volcano.sh/preemptable"
SCHEDULER_NAME = "volcano"


class PodGroupPhase(StrEnum):
    """PodGroup phases, as vc-scheduler writes them."""

    PENDING = "Pending"
    INQUEUE = "Inqueue"
    RUNNING = "Running"
    UNKNOWN = "Unknown"
    COMPLETED = "Completed"


class PodGroupNetworkTopology(OpenKubeModel):
    """Volcano's NetworkTopologySpec: the HyperNode tier a gang may span (hard) or prefers (soft)."""

    mode: Literal["hard", "soft"] = Field(default="hard", description="hard or soft.")
    highest_tier_allowed: StrictInt | None = Field(
        default=None,
        description="Highest HyperNode tier the gang may cross; hard mode ignores a spec without it.",
    )


class PodGroupSpec(OpenKubeModel):
    """The gang: how many pods must be placeable together, in which queue, at which priority."""

    min_member: Annotated[StrictInt, Field(ge=0)] = Field(
        default=1, description="Pods that must be schedulable at once for any to run."
    )
    min_task_member: dict[str, Annotated[StrictInt, Field(ge=0)]] | None = Field(
        default=None, description="Minimum pods per task role (pod annotation volcano.sh/task-spec)."
    )
    queue: str = Field(default="default", description="Volcano queue.")
    priority_class_name: str | None = Field(
        default=None, description="PriorityClass giving the job priority."
    )
    min_resources: dict[str, Quantity] | None = Field(
        default=None, description="Resources the enqueue gate checks before admitting the gang."
    )
    network_topology: PodGroupNetworkTopology | None = Field(
        default=None, description="HyperNode tier constraint for the whole gang."
    )


class PodGroupCondition(OpenKubeModel):
    """A condition vc-scheduler writes (Scheduled, Unschedulable)."""

    type: str = Field(description="Condition type.")
    status: str = Field(description="True, False or Unknown.")
    transition_id: str | None = Field(default=None, alias="transitionID", description="Scheduler session id.")
    last_transition_time: datetime | None = Field(default=None, description="When the status last changed.")
    reason: str | None = Field(default=None, description="Machine-readable reason.")
    message: str | None = Field(default=None, description="Details.")


class PodGroupStatus(OpenKubeModel):
    """What vc-scheduler reports about the gang."""

    phase: PodGroupPhase | None = Field(default=None, description="Scheduling phase.")
    conditions: list[PodGroupCondition] | None = Field(default=None, description="Scheduler conditions.")
    running: StrictInt | None = Field(default=None, description="Pods running.")
    succeeded: StrictInt | None = Field(default=None, description="Pods succeeded.")
    failed: StrictInt | None = Field(default=None, description="Pods failed.")


class PodGroup(KubeModel):
    """A Volcano PodGroup. Its CRD has no status subresource: write spec by patch only."""

    api_version: Literal["scheduling.volcano.sh/v1beta1"] = Field(default=VOLCANO_API_VERSION)
    kind: Literal["PodGroup"] = Field(default="PodGroup")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodGroupSpec = Field(default_factory=PodGroupSpec)
    status: PodGroupStatus | None = None
