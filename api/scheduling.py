"""How a TorchJob's gang is scheduled: Volcano queue, priority, preemptibility and network topology."""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator

from api.base import KubeModel
from api.cel import rule, rules
from api.fields import DnsLabel, DnsSubdomain

TIER_REQUIRED_MESSAGE: Final = (
    "networkTopology.highestTierAllowed is required in hard mode: the highest HyperNode tier the gang may "
    "span (1 keeps it inside one tier-1 HyperNode, such as a rack)"
)


class NetworkTopology(KubeModel):
    """Where Volcano may place the gang in the HyperNode tree (topology.volcano.sh HyperNodes): the
    PodGroup's `networkTopology`. Placing all workers under one switch keeps collectives off the spine."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(
                "self.mode != 'hard' || has(self.highestTierAllowed)",
                TIER_REQUIRED_MESSAGE,
                field_path=".highestTierAllowed",
            )
        )
    )

    mode: Literal["hard", "soft"] = Field(
        default="hard",
        description="hard: the gang stays Pending until it fits inside one HyperNode of at most "
        "highestTierAllowed; soft: the scheduler prefers the lowest tier that fits and crosses tiers if it "
        "must.",
    )
    highest_tier_allowed: Annotated[StrictInt, Field(ge=1, le=64)] | None = Field(
        default=None,
        description="Highest HyperNode tier the gang may span (tier 1 is the lowest, e.g. a rack or a "
        "leaf switch). Required in hard mode.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.mode == "hard" and self.highest_tier_allowed is None:
            raise ValueError(TIER_REQUIRED_MESSAGE)
        return self


class Scheduling(KubeModel):
    """Gang scheduling through a Volcano PodGroup (minMember = nodes.min, or nodes.count for a fixed job)."""

    queue: DnsLabel = Field(
        default="default",
        description="Volcano queue the PodGroup joins. Immutable: a job cannot move between queues.",
        json_schema_extra=rules(rule("self == oldSelf", "scheduling.queue is immutable")),
    )
    priority_class_name: DnsSubdomain | None = Field(
        default=None,
        description="PriorityClass of the PodGroup and its pods; orders jobs in the queue and decides who "
        "may preempt whom.",
    )
    preemptible: StrictBool = Field(
        default=False,
        description="Whether Volcano may evict this job's pods for higher-priority work. Preemptions are "
        "counted apart from failures (failurePolicy.maxPreemptionRestarts).",
    )
    network_topology: NetworkTopology | None = Field(
        default=None,
        description="Keep the gang inside one HyperNode (rack, switch) of the cluster's network topology: "
        "becomes the PodGroup's networkTopology. Needs HyperNode objects and Volcano's "
        "network-topology-aware plugin.",
    )
