"""Volcano's own job controller (vcjob) as a benchmark peer: the manifest of the same gang as a TorchJob.

The rig runs the controller on request (``Cluster(volcano_jobs=True)``: vc-controller-manager's
job-controller). No Volcano admission webhook runs on the rig, so every field its webhook would default is
spelled out here: scheduler, queue, the gang size and the task's name.

A lost pod restarts the whole Volcano Job (policy ``PodEvicted -> RestartJob``, what Volcano's own examples
give distributed training): a torchrun gang of fixed size must rendezvous again without the lost member, so
this is the same recovery a TorchJob does. Without the policy vcjob would replace only the lost pod.

The workers find each other the way a torchrun gang on vcjob does: Volcano's ``svc`` plugin gives the job a
headless Service and each pod a stable hostname (``<job>-worker-0.<job>`` is the c10d endpoint), as a
TorchJob's workers get theirs from the operator. Its NetworkPolicy is turned off (a TorchJob makes none).
"""

from __future__ import annotations

from controller.runtime.objects import JsonObject
from controller.runtime.resource import Resource
from e2e.cluster.pool import NodePool

VCJOBS = Resource("batch.volcano.sh", "v1alpha1", "Job", "jobs")
TASK = "worker"


def worker_container() -> JsonObject:
    """The container of a Go peer's worker pod, shaped like the bench's TorchJob workers (1 CPU, 1Gi)."""
    return {
        "name": "trainer",
        "image": "example.invalid/train:1",
        "command": ["torchrun", "-m", "train"],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
    }


def vcjob(name: str, pool: NodePool, *, workers: int) -> JsonObject:
    """A Volcano Job of one task of `workers` pods shaped like the bench's TorchJob workers (1 CPU, 1Gi), a
    gang of all of them in the default queue; pods are named ``<name>-worker-<i>``."""
    container = worker_container()
    task = {
        "name": TASK,
        "replicas": workers,
        "minAvailable": workers,
        "template": {
            "spec": {"restartPolicy": "Never", "nodeSelector": pool.node_selector, "containers": [container]}
        },
    }
    return {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": "volcano",
            "queue": "default",
            "minAvailable": workers,
            "maxRetry": 3,
            "policies": [{"event": "PodEvicted", "action": "RestartJob"}],
            "plugins": {"svc": ["--disable-network-policy=true"]},
            "tasks": [task],
        },
    }
