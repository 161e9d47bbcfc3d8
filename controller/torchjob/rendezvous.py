"""The dedicated rendezvous store of an elastic job: one small CPU pod and its Service, outside the gang.

torchrun's c10d store is a single point of failure of the whole job: whoever hosts it takes the job down
with it. A fixed-size job loses its whole gang with any worker anyway, so worker 0 hosts the store there.
An elastic job must outlive the loss of any worker, so its store runs in ``<job>-rendezvous``
(``python -m workloads.rendezvous``) and every worker dials ``<job>-rdzv.<namespace>.svc`` with
``is_host=0``.

The pod is *not* a member of the job's Volcano gang:
- it outlives gang restarts (worker pods are replaced on every attempt; each attempt uses a fresh rendezvous
  id in the same long-lived store), and the gang's minMember stays the workers';
- it has a one-member PodGroup ``<job>-rendezvous`` of its own, in the job's queue (quota is accounted
  there) at the job's priority, and ``volcano.sh/preemptable: "false"``, so preempt/reclaim never pick it.
  Volcano only schedules pods of a PodGroup; for a bare pod its pg-controller would make one, but owned by
  the pod's controller (the job), so it would outlive the pod and hold queue quota after a suspend. The
  operator therefore creates and deletes the store's PodGroup itself.
The store lives in memory, so losing the pod ends the attempt: the workers' agents fail, the gang restarts
with a fresh rendezvous id, and the plan replaces a finished or vanished rendezvous pod.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from api import ObjectMeta, TorchJob
from api.podgroup import GROUP_NAME_ANNOTATION, PREEMPTABLE_ANNOTATION, SCHEDULER_NAME, PodGroup, PodGroupSpec
from controller.runtime import objects
from controller.runtime.objects import JsonObject
from controller.torchjob.labels import MANAGED_BY, MANAGED_BY_LABEL, REPLICA_INDEX_LABEL, owner_reference

RENDEZVOUS_LABEL: Final = "pyroclast.dev/rendezvous-of"
"""Names the job on its rendezvous pod (never the job-name label: the store is not a worker, and the scale
subresource's selector counts workers only)."""
STORE_CONTAINER: Final = "rendezvous"
STORE_MODULE: Final = "workloads.rendezvous"
# The store is idle between rounds; torch's import is most of its memory.
STORE_RESOURCES: Final[JsonObject] = {
    "requests": {"cpu": "50m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}
# Worker scheduling constraints the store follows, so it lands where the job may run.
_PLACEMENT: Final = ("nodeSelector", "tolerations", "affinity", "imagePullSecrets")


def uses_dedicated_store(job: TorchJob) -> bool:
    """Elastic jobs (min < max) get a dedicated store; a fixed-size gang's worker 0 hosts it."""
    return job.spec.nodes.elastic


def rendezvous_pod_name(job: TorchJob) -> str:
    """`<job>-rendezvous` (job names are at most 48 characters, so this stays a DNS label)."""
    return f"{job.metadata.name}-rendezvous"


def rendezvous_podgroup_name(job: TorchJob) -> str:
    """The store's own one-member PodGroup (a PodGroup, so the same name as the pod is free)."""
    return rendezvous_pod_name(job)


def rendezvous_service_name(job: TorchJob) -> str:
    """`<job>-rdzv`, distinct from the workers' headless Service `<job>`."""
    return f"{job.metadata.name}-rdzv"


def store_endpoint(job: TorchJob) -> str:
    """PET_RDZV_ENDPOINT of every worker of an elastic job."""
    return f"{rendezvous_service_name(job)}.{job.metadata.namespace}.svc:{job.spec.rendezvous.port}"


def store_command(job: TorchJob) -> list[str]:
    """The store's command line; it binds all addresses of its own pod."""
    return ["python", "-m", STORE_MODULE, "--port", str(job.spec.rendezvous.port)]


def desired_rendezvous_pod(job: TorchJob) -> JsonObject:
    """The store pod: the job's image (it ships ``workloads``), CPU only, never restarted in place (a
    restarted store would be empty; the plan replaces the pod and the gang restarts instead)."""
    spec = job.spec
    overlay = spec.template.spec if spec.template and spec.template.spec else None
    port = spec.rendezvous.port
    container: JsonObject = {
        "name": STORE_CONTAINER,
        "image": spec.image,
        "command": store_command(job),
        "ports": [{"name": "rendezvous", "containerPort": port, "protocol": "TCP"}],
        "resources": STORE_RESOURCES,
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 5},
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    pod_spec: JsonObject = {
        "schedulerName": SCHEDULER_NAME,
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 5,
        "containers": [container],
    }
    if spec.scheduling.priority_class_name:
        pod_spec["priorityClassName"] = spec.scheduling.priority_class_name
    if overlay is not None:
        written = overlay.to_k8s()
        pod_spec.update({k: written[k] for k in _PLACEMENT if k in written})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": rendezvous_pod_name(job),
            "namespace": job.metadata.namespace,
            "labels": _labels(job),
            "annotations": {
                GROUP_NAME_ANNOTATION: rendezvous_podgroup_name(job),
                PREEMPTABLE_ANNOTATION: "false",
            },
            "ownerReferences": [owner_reference(job).to_k8s()],
        },
        "spec": pod_spec,
    }


def desired_rendezvous_podgroup(job: TorchJob) -> JsonObject:
    """A one-member gang in the job's queue at the job's priority; no minResources, like the workers' gang
    (the enqueue gate would keep it Pending on a full cluster)."""
    return PodGroup(
        metadata=ObjectMeta(
            name=rendezvous_podgroup_name(job),
            namespace=job.metadata.namespace,
            labels=_labels(job),
            owner_references=[owner_reference(job)],
        ),
        spec=PodGroupSpec(
            min_member=1,
            queue=job.spec.scheduling.queue,
            priority_class_name=job.spec.scheduling.priority_class_name,
        ),
    ).to_k8s()


def desired_rendezvous_service(job: TorchJob) -> JsonObject:
    """A headless Service whose name resolves to the store pod, published before it is ready (agents
    retry the connection for readTimeout)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": rendezvous_service_name(job),
            "namespace": job.metadata.namespace,
            "labels": _labels(job),
            "ownerReferences": [owner_reference(job).to_k8s()],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {RENDEZVOUS_LABEL: job.metadata.name or ""},
            "ports": [{"name": "rendezvous", "port": job.spec.rendezvous.port, "protocol": "TCP"}],
        },
    }


StoreKind = Literal["Service", "PodGroup", "Pod"]


@dataclass(frozen=True, slots=True)
class Owned:
    """One of the store's objects as it exists."""

    name: str
    uid: str
    deleting: bool


@dataclass(frozen=True, slots=True)
class StoreState:
    """The rendezvous pod, its PodGroup and its Service as the plan sees them."""

    pod: Owned | None = None
    pod_phase: str | None = None
    podgroup: Owned | None = None
    service: Owned | None = None

    @property
    def gone(self) -> bool:
        """The store no longer serves: its pod finished (a store never exits on its own)."""
        return self.pod_phase in ("Succeeded", "Failed")


def observe_store(job: TorchJob, pods: Iterable[JsonObject], owned: Iterable[JsonObject]) -> StoreState:
    """Find the job's store pod among its pods, and its PodGroup and Service among `owned`."""
    name = rendezvous_pod_name(job)
    pod = next((p for p in pods if objects.name(p) == name), None)
    # by name alone: list items need not carry their kind, and the two names differ
    by_name = {objects.name(o): o for o in owned}
    status: JsonObject = (pod or {}).get("status") or {}
    return StoreState(
        pod=_owned(pod),
        pod_phase=str(status.get("phase") or "Pending") if pod is not None else None,
        podgroup=_owned(by_name.get(rendezvous_podgroup_name(job))),
        service=_owned(by_name.get(rendezvous_service_name(job))),
    )


def is_worker(pod: JsonObject) -> bool:
    """A worker pod (it has a replica index), as opposed to the store."""
    return REPLICA_INDEX_LABEL in objects.labels(pod)


def store_creates(job: TorchJob, store: StoreState) -> list[tuple[StoreKind, JsonObject]]:
    """(kind, body) to create so an elastic job's store serves, in order; none for fixed-size jobs."""
    if not uses_dedicated_store(job):
        return []
    out: list[tuple[StoreKind, JsonObject]] = []
    if store.service is None:
        out.append(("Service", desired_rendezvous_service(job)))
    if store.podgroup is None:
        out.append(("PodGroup", desired_rendezvous_podgroup(job)))
    if store.pod is None:
        out.append(("Pod", desired_rendezvous_pod(job)))
    return out


def store_deletes(
    job: TorchJob, store: StoreState, *, wanted: bool
) -> list[tuple[Literal["Pod", "PodGroup"], Owned]]:
    """What to delete: a finished store pod (to be replaced under the same name), or pod and PodGroup when
    the store is not wanted (the job finished or is suspended: it must hold no queue quota). The Service
    holds nothing and goes with the job."""
    wanted = wanted and uses_dedicated_store(job)
    out: list[tuple[Literal["Pod", "PodGroup"], Owned]] = []
    if store.pod is not None and not store.pod.deleting and (store.gone or not wanted):
        out.append(("Pod", store.pod))
    if store.podgroup is not None and not store.podgroup.deleting and not wanted:
        out.append(("PodGroup", store.podgroup))
    return out


def _owned(obj: JsonObject | None) -> Owned | None:
    if obj is None:
        return None
    meta = objects.metadata(obj)
    return Owned(objects.name(obj), str(meta.get("uid", "")), meta.get("deletionTimestamp") is not None)


def _labels(job: TorchJob) -> dict[str, str]:
    return {RENDEZVOUS_LABEL: job.metadata.name or "", MANAGED_BY_LABEL: MANAGED_BY}
