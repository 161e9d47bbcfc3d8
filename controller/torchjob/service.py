"""The namespace's headless Service giving every worker a stable DNS name
(`<pod>.pyroclast-workers.<namespace>.svc`).

One Service per namespace, shared by all its jobs, not one per job: it costs a job no write of its own
(the happy path stays at N + 4 writes), and pod names, unique in the namespace, keep the names apart. It
carries no owner, so it outlives any one job; the namespace's deletion removes it.
"""

from __future__ import annotations

from typing import Any, Final

from api import TorchJob
from controller.torchjob.labels import MANAGED_BY, MANAGED_BY_LABEL

WORKERS_SERVICE: Final = "pyroclast-workers"


def service_name(job: TorchJob) -> str:
    """The Service's name, the pods' `subdomain` (the same for every job)."""
    del job
    return WORKERS_SERVICE


def desired_service(job: TorchJob) -> dict[str, Any]:
    """The headless Service in `job`'s namespace selecting every pod the operator manages there.

    No ports: DNS records of a headless Service do not need them. publishNotReadyAddresses lets the
    rendezvous resolve peers before they pass readiness, which torchrun needs to form the first round.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": WORKERS_SERVICE,
            "namespace": job.metadata.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {MANAGED_BY_LABEL: MANAGED_BY},
        },
    }
