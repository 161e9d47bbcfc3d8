"""Labels, annotations and owner references that tie a TorchJob to the objects it owns."""

from __future__ import annotations

from typing import Final

from api import API_VERSION, KIND, OwnerReference, TorchJob
from api.constants import LABEL_ATTEMPT as ATTEMPT_LABEL
from api.constants import LABEL_JOB_NAME as JOB_NAME_LABEL
from api.constants import LABEL_MANAGED_BY as MANAGED_BY_LABEL
from api.constants import LABEL_REPLICA_INDEX as REPLICA_INDEX_LABEL
from api.constants import MANAGED_BY

__all__ = [
    "ATTEMPT_LABEL",
    "JOB_NAME_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "REPLICA_INDEX_LABEL",
    "WORKER_ROLE",
    "job_labels",
    "owner_reference",
    "worker_name",
    "worker_selector",
]

WORKER_ROLE: Final = "worker"


def job_labels(job: TorchJob) -> dict[str, str]:
    """Labels on everything the job owns."""
    return {JOB_NAME_LABEL: _name(job), MANAGED_BY_LABEL: MANAGED_BY}


def worker_selector(job: TorchJob) -> str:
    """Label selector of the job's worker pods (also the scale subresource's selector)."""
    return f"{JOB_NAME_LABEL}={_name(job)}"


def owner_reference(job: TorchJob) -> OwnerReference:
    """A controller reference to `job`: the garbage collector deletes what carries it after the job."""
    uid = job.metadata.uid
    if not uid:
        raise ValueError("a TorchJob needs a UID before it can own objects")
    return OwnerReference(
        api_version=API_VERSION,
        kind=KIND,
        name=_name(job),
        uid=uid,
        controller=True,
        block_owner_deletion=True,
    )


def worker_name(job: TorchJob, index: int) -> str:
    """`<job>-worker-<index>`: stable across gang restarts, so old pods must be gone before new ones start."""
    return f"{_name(job)}-{WORKER_ROLE}-{index}"


def _name(job: TorchJob) -> str:
    name = job.metadata.name
    if not name:
        raise ValueError("a TorchJob needs a name")
    return name
