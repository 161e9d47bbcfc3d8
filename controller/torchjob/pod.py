"""Worker pods: one per node, each running torchrun for `nprocPerNode` processes, all in one Volcano gang."""

from __future__ import annotations

from typing import Any, Final

from api import TorchJob, contract
from api.constants import CHECKPOINT_VOLUME, TRAINER_CONTAINER
from api.podgroup import GROUP_NAME_ANNOTATION, PREEMPTABLE_ANNOTATION, SCHEDULER_NAME, TASK_SPEC_KEY
from controller.torchjob.env import worker_env
from controller.torchjob.labels import (
    ATTEMPT_LABEL,
    REPLICA_INDEX_LABEL,
    WORKER_ROLE,
    job_labels,
    owner_reference,
    worker_name,
)
from controller.torchjob.progress import TOKEN_SECONDS, TOKEN_VOLUME
from controller.torchjob.rendezvous import store_endpoint, uses_dedicated_store
from controller.torchjob.service import service_name
from scheduling.podgroup import podgroup_name

LAUNCHER: Final = "torchrun"
# Room for the workload to agree on a stop step and save a checkpoint after SIGTERM.
DEFAULT_TERMINATION_GRACE_SECONDS: Final = 120


def worker_dns_name(job: TorchJob, index: int) -> str:
    """The worker's stable DNS name through the headless Service."""
    return f"{worker_name(job, index)}.{service_name(job)}.{job.metadata.namespace}.svc"


def rendezvous_endpoint(job: TorchJob) -> str:
    """An elastic job's dedicated store, else worker 0, which hosts the store of a fixed-size gang."""
    if uses_dedicated_store(job):
        return store_endpoint(job)
    return f"{worker_dns_name(job, 0)}:{job.spec.rendezvous.port}"


DEFAULT_SERVICE_ACCOUNT: Final = "default"
"""The namespace's own account, named on workers that get a progress token and name none."""


def progress_token_volume() -> dict[str, Any]:
    """A projected service-account token for the progress endpoint only, bound to the pod."""
    token = {"audience": contract.PROGRESS_AUDIENCE, "expirationSeconds": TOKEN_SECONDS, "path": "token"}
    return {"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": token}]}}


def desired_worker(
    job: TorchJob,
    index: int,
    attempt: int,
    resume_from: str | None = None,
    progress_url: str | None = None,
) -> dict[str, Any]:
    """Worker pod `index` of gang attempt `attempt`; `resume_from`: the newest committed checkpoint the
    operator knows of (``status.lastCheckpoint.path``); `progress_url`: the operator's live progress endpoint
    (with it the trainer gets a token to post with, see :mod:`.progress`)."""
    spec = job.spec
    overlay_meta = spec.template.metadata if spec.template and spec.template.metadata else None
    overlay = spec.template.spec if spec.template and spec.template.spec else None
    name = worker_name(job, index)

    labels = {
        **(overlay_meta.labels if overlay_meta and overlay_meta.labels else {}),
        **job_labels(job),
        REPLICA_INDEX_LABEL: str(index),
        ATTEMPT_LABEL: str(attempt),
    }
    annotations = {
        **(overlay_meta.annotations if overlay_meta and overlay_meta.annotations else {}),
        GROUP_NAME_ANNOTATION: podgroup_name(job),
        TASK_SPEC_KEY: WORKER_ROLE,
        PREEMPTABLE_ANNOTATION: "true" if spec.scheduling.preemptible else "false",
    }

    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if spec.checkpoint is not None:
        mounts.append({"name": CHECKPOINT_VOLUME, "mountPath": spec.checkpoint.path})
        volumes.append({"name": CHECKPOINT_VOLUME, **spec.checkpoint.volume})
    if progress_url is not None:
        mounts.append({"name": TOKEN_VOLUME, "mountPath": contract.PROGRESS_TOKEN_DIR, "readOnly": True})
        volumes.append(progress_token_volume())
    if overlay is not None:
        mounts.extend(m.to_k8s() for m in overlay.volume_mounts or [])
        volumes.extend(v.to_k8s() for v in overlay.volumes or [])

    trainer: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": spec.image,
        "command": [LAUNCHER, *spec.command],
        "env": worker_env(
            job,
            attempt=attempt,
            rendezvous_endpoint=rendezvous_endpoint(job),
            local_addr=worker_dns_name(job, index),
            rendezvous_host=index == 0 and not uses_dedicated_store(job),
            resume_from=resume_from,
            progress_url=progress_url,
        ),
        "ports": [{"name": "rendezvous", "containerPort": spec.rendezvous.port, "protocol": "TCP"}],
        "terminationMessagePath": contract.DEFAULT_TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.args:
        trainer["args"] = list(spec.args)
    if spec.image_pull_policy:
        trainer["imagePullPolicy"] = spec.image_pull_policy
    if spec.resources is not None:
        trainer["resources"] = spec.resources.to_k8s()
    if mounts:
        trainer["volumeMounts"] = mounts

    pod_spec: dict[str, Any] = {
        "schedulerName": SCHEDULER_NAME,
        "restartPolicy": "Never",
        "hostname": name,
        "subdomain": service_name(job),
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": DEFAULT_TERMINATION_GRACE_SECONDS,
        "containers": [trainer, *(c.to_k8s() for c in (overlay.sidecars or [] if overlay else []))],
    }
    if spec.scheduling.priority_class_name:
        pod_spec["priorityClassName"] = spec.scheduling.priority_class_name
    if volumes:
        pod_spec["volumes"] = volumes
    if overlay is not None:
        written = overlay.to_k8s()
        pod_spec.update({k: written[k] for k in _COPIED if k in written})
    if "serviceAccountName" not in pod_spec:
        # Training code needs no API access; a user who names a service account decides for themselves.
        pod_spec["automountServiceAccountToken"] = False
        if progress_url is not None:
            # A projected token needs a named account: an apiserver without the ServiceAccount admission
            # plugin (which would default it) refuses the pod otherwise.
            pod_spec["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": job.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(job).to_k8s()],
        },
        "spec": pod_spec,
    }


# Overlay fields copied onto the pod spec as written; volumes and mounts are merged above.
_COPIED: Final = (
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "initContainers",
    "imagePullSecrets",
    "securityContext",
    "runtimeClassName",
    "terminationGracePeriodSeconds",
)
