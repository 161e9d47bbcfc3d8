"""The headless Service giving every worker a stable DNS name (`<pod>.<job>.<namespace>.svc`)."""

from __future__ import annotations

from typing import Any

from api import TorchJob
from controller.torchjob.labels import JOB_NAME_LABEL, job_labels, owner_reference


def service_name(job: TorchJob) -> str:
    """The Service is named after the job (the pods' `subdomain`)."""
    return job.metadata.name or ""


def desired_service(job: TorchJob) -> dict[str, Any]:
    """A headless Service selecting the job's workers. publishNotReadyAddresses lets the rendezvous resolve
    peers before they pass readiness, which torchrun needs to form the first round."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(job),
            "namespace": job.metadata.namespace,
            "labels": job_labels(job),
            "ownerReferences": [owner_reference(job).to_k8s()],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {JOB_NAME_LABEL: service_name(job)},
            "ports": [{"name": "rendezvous", "port": job.spec.rendezvous.port, "protocol": "TCP"}],
        },
    }
