"""How a TorchJob's gang is scheduled: Volcano queue, priority, and whether it may be preempted."""

from __future__ import annotations

from pydantic import Field, StrictBool

from api.base import KubeModel
from api.cel import rule, rules
from api.fields import DnsLabel, DnsSubdomain


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
