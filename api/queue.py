"""Volcano's Queue (scheduling.volcano.sh/v1beta1, cluster-scoped): a share of the cluster jobs wait in."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt

from api.base import KubeModel, OpenKubeModel
from api.constants import VOLCANO_API_VERSION
from api.meta import ObjectMeta
from api.quantity import Quantity

ResourceList = dict[str, Quantity]


class QueueState(StrEnum):
    """Queue states; the scheduler allocates only in Open queues."""

    OPEN = "Open"
    CLOSED = "Closed"
    CLOSING = "Closing"
    UNKNOWN = "Unknown"


class Guarantee(OpenKubeModel):
    """Resources reserved for the queue."""

    resource: ResourceList | None = Field(default=None, description="Reserved resources.")


class QueueSpec(OpenKubeModel):
    """A queue's share of the cluster."""

    weight: Annotated[StrictInt, Field(ge=1, le=65535)] = Field(
        default=1, description="Share relative to other queues (proportion plugin)."
    )
    capability: ResourceList | None = Field(default=None, description="Hard cap on the queue's allocation.")
    guarantee: Guarantee | None = Field(default=None, description="Resources reserved for the queue.")
    deserved: ResourceList | None = Field(
        default=None, description="Fair share under the capacity plugin; guarantee <= deserved <= capability."
    )
    reclaimable: StrictBool | None = Field(
        default=None, description="Whether other queues may reclaim resources above deserved (nil means yes)."
    )
    parent: str | None = Field(
        default=None, description="Parent queue (hierarchical queues); root by default."
    )
    priority: Annotated[StrictInt, Field(ge=0)] | None = Field(default=None, description="Queue order.")


class QueueStatus(OpenKubeModel):
    """What Volcano reports about a queue."""

    state: QueueState | None = Field(default=None, description="Open, Closed, Closing or Unknown.")
    allocated: ResourceList | None = Field(default=None, description="Resources allocated now.")


class Queue(KubeModel):
    """A Volcano Queue."""

    api_version: Literal["scheduling.volcano.sh/v1beta1"] = Field(default=VOLCANO_API_VERSION)
    kind: Literal["Queue"] = Field(default="Queue")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: QueueSpec = Field(default_factory=QueueSpec)
    status: QueueStatus | None = None
