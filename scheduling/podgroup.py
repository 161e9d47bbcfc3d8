"""The PodGroup a TorchJob's workers are gang-scheduled as: pure translation, no I/O.

Invariants:
- the name is unique per job UID, so a job deleted and re-created under the same name never adopts the old
  gang (whose garbage collection may lag);
- minMember is the gang minimum (nodes.min, or nodes.count for a fixed job): the scheduler binds that many
  workers together or none;
- no minResources: Volcano's enqueue gate (overcommit, proportion) compares it with the cluster's *idle*
  resources, so on a full cluster a higher-priority gang (preempt) or a gang of a queue under its share
  (reclaim) would stay Pending forever and never become a preemptor. Without it the gang is Inqueue at once;
  allocate still binds all minMember workers or none and proportion still caps each queue per task;
- networkTopology is the job's scheduling.networkTopology as it is (or absent): Volcano's allocate then
  tries whole HyperNodes of the allowed tiers, lowest tier first, and binds the gang inside one or not at all
  (hard), or prefers the lowest tier that fits (soft).
"""

from __future__ import annotations

from typing import Any

from api import ObjectMeta, OwnerReference, PodGroup, PodGroupSpec, TorchJob
from api.podgroup import PodGroupNetworkTopology
from api.scheduling import NetworkTopology

_UID_CHARS = 8


def podgroup_name(job: TorchJob) -> str:
    """`<job>-<first 8 characters of its UID>`."""
    meta = job.metadata
    if not meta.name or not meta.uid:
        raise ValueError("a TorchJob needs a name and a UID before it has a PodGroup")
    return f"{meta.name}-{meta.uid.replace('-', '')[:_UID_CHARS]}"


def desired_podgroup(job: TorchJob, owner: OwnerReference, labels: dict[str, str]) -> PodGroup:
    """The PodGroup for `job`, owned by it."""
    spec = job.spec
    return PodGroup(
        metadata=ObjectMeta(
            name=podgroup_name(job),
            namespace=job.metadata.namespace,
            labels=dict(labels),
            owner_references=[owner],
        ),
        spec=PodGroupSpec(
            min_member=spec.nodes.min_nodes,
            queue=spec.scheduling.queue,
            priority_class_name=spec.scheduling.priority_class_name,
            network_topology=_network_topology(spec.scheduling.network_topology),
        ),
    )


def _network_topology(wanted: NetworkTopology | None) -> PodGroupNetworkTopology | None:
    if wanted is None:
        return None
    return PodGroupNetworkTopology(mode=wanted.mode, highest_tier_allowed=wanted.highest_tier_allowed)


def podgroup_spec_patch(current: dict[str, Any], desired: PodGroup) -> dict[str, Any] | None:
    """A merge patch bringing `current`'s spec to `desired`'s, or None when nothing differs.

    Only the fields we own are compared, so defaults the apiserver or scheduler add never cause a write.
    """
    want = desired.spec.to_k8s()
    have: dict[str, Any] = current.get("spec") or {}
    changes: dict[str, Any] = {}
    for key in ("minMember", "queue", "priorityClassName", "minResources", "networkTopology"):
        if have.get(key) != want.get(key):
            changes[key] = want.get(key)
    return {"spec": changes} if changes else None
