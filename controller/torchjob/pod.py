"""Worker pods: one per node, each running torchrun for `nprocPerNode` processes, all in one Volcano gang.

A worker pod is the job's template (``spec.template``, a core PodTemplateSpec) with the operator's own fields
on top: what the contract needs (labels, annotations, scheduler, restart policy, DNS name, the trainer's
image, command, launcher env and resources, reserved volumes and mounts), which admission keeps the template
from setting, so nothing of the template is overwritten and nothing else of it is dropped. A few fields are
defaults the template may change: ``enableServiceLinks: false``, ``terminationGracePeriodSeconds``, no
service-account token without a named account, and ``dnsPolicy: ClusterFirstWithHostNet`` with host
networking (else the workers could not resolve each other's Service names).
"""

from __future__ import annotations

from typing import Any, Final

from api import TorchJob, contract
from api.constants import CHECKPOINT_VOLUME, SHARED_MEMORY_PATH, SHARED_MEMORY_VOLUME, TRAINER_CONTAINER
from api.pod import PodOverlaySpec
from api.podgroup import GROUP_NAME_ANNOTATION, PREEMPTABLE_ANNOTATION, SCHEDULER_NAME, TASK_SPEC_KEY
from api.sharedmemory import shared_memory_size
from controller.torchjob.env import worker_env
from controller.torchjob.labels import (
    ATTEMPT_LABEL,
    REPLICA_INDEX_LABEL,
    WORKER_ROLE,
    job_labels,
    owner_reference,
    worker_name,
)
from controller.torchjob.ports import host_network, rendezvous_port
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
    """An elastic job's dedicated store, else worker 0, which hosts the store of a fixed-size gang (on the
    job's allocated host port with host networking, :mod:`.ports`)."""
    if uses_dedicated_store(job):
        return store_endpoint(job)
    return f"{worker_dns_name(job, 0)}:{rendezvous_port(job)}"


DEFAULT_SERVICE_ACCOUNT: Final = "default"
"""The namespace's own account, named on workers that get a progress token and name none."""


def progress_token_volume() -> dict[str, Any]:
    """A projected service-account token for the progress endpoint only, bound to the pod."""
    token = {"audience": contract.PROGRESS_AUDIENCE, "expirationSeconds": TOKEN_SECONDS, "path": "token"}
    return {"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": token}]}}


def shared_memory_volume(job: TorchJob) -> dict[str, Any] | None:
    """The trainer's memory-backed /dev/shm (:mod:`api.sharedmemory`), or None when switched off."""
    spec = job.spec
    if not spec.shared_memory.enabled:
        return None
    limits = spec.resources.limits if spec.resources is not None else None
    size = shared_memory_size(spec.shared_memory, (limits or {}).get("memory"))
    empty_dir: dict[str, Any] = {"medium": "Memory"}
    if size is not None:
        empty_dir["sizeLimit"] = str(size)
    return {"name": SHARED_MEMORY_VOLUME, "emptyDir": empty_dir}


_OWN_FIELDS: Final = ("volumeMounts", "sidecars", "containers", "volumes")
"""Template fields merged rather than copied: Pyroclast's own two, and the lists the operator adds to."""


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
    if (shm := shared_memory_volume(job)) is not None:
        mounts.append({"name": SHARED_MEMORY_VOLUME, "mountPath": SHARED_MEMORY_PATH})
        volumes.append(shm)
    written: dict[str, Any] = overlay.to_k8s() if overlay is not None else {}
    volumes.extend(written.get("volumes", []))

    trainer = _trainer(job, index, attempt, resume_from, progress_url, overlay, mounts)
    extra = [c for c in written.get("containers", []) if c["name"] != TRAINER_CONTAINER]
    pod_spec: dict[str, Any] = {
        # Defaults the template may change.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": DEFAULT_TERMINATION_GRACE_SECONDS,
        # The template as written.
        **{k: v for k, v in written.items() if k not in _OWN_FIELDS},
        # The operator's own (admission refuses them in the template).
        "schedulerName": SCHEDULER_NAME,
        "restartPolicy": "Never",
        "hostname": name,
        "subdomain": service_name(job),
        "containers": [trainer, *extra, *written.get("sidecars", [])],
    }
    if spec.scheduling.priority_class_name:
        pod_spec["priorityClassName"] = spec.scheduling.priority_class_name
    if volumes:
        pod_spec["volumes"] = volumes
    if pod_spec.get("hostNetwork") and "dnsPolicy" not in pod_spec:
        # ClusterFirst falls back to the node's resolver on the host network: Service names would not resolve.
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if "serviceAccountName" not in pod_spec:
        # Training code needs no API access; a user who names a service account decides for themselves.
        pod_spec.setdefault("automountServiceAccountToken", False)
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


def _trainer(
    job: TorchJob,
    index: int,
    attempt: int,
    resume_from: str | None,
    progress_url: str | None,
    overlay: PodOverlaySpec | None,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The trainer container: the template's ``trainer`` entry, the spec's and the contract's fields on
    top; env, ports and mounts are the operator's first, then the template's."""
    spec = job.spec
    base = overlay.trainer() if overlay is not None else None
    written = base.to_k8s() if base is not None else {}
    env = worker_env(
        job,
        attempt=attempt,
        rendezvous_endpoint=rendezvous_endpoint(job),
        local_addr=worker_dns_name(job, index),
        rendezvous_host=index == 0 and not uses_dedicated_store(job),
        resume_from=resume_from,
        progress_url=progress_url,
    )
    ports: list[dict[str, Any]] = []
    if not (host_network(job) and uses_dedicated_store(job)):
        # With host networking a declared port is a host port: an elastic worker listens on none of its own.
        ports.append({"name": "rendezvous", "containerPort": rendezvous_port(job), "protocol": "TCP"})
    all_mounts = [
        *mounts,
        *(m.to_k8s() for m in ((overlay.volume_mounts if overlay is not None else None) or [])),
        *written.get("volumeMounts", []),
    ]
    trainer: dict[str, Any] = {
        **written,
        "name": TRAINER_CONTAINER,
        "image": spec.image,
        "command": [LAUNCHER, *spec.command],
        "env": [*env, *written.get("env", [])],
        "ports": [*ports, *written.get("ports", [])],
        "terminationMessagePath": contract.DEFAULT_TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if not trainer["ports"]:
        del trainer["ports"]
    if spec.args:
        trainer["args"] = list(spec.args)
    if spec.image_pull_policy:
        trainer["imagePullPolicy"] = spec.image_pull_policy
    if spec.resources is not None:
        trainer["resources"] = spec.resources.to_k8s()
    if all_mounts:
        trainer["volumeMounts"] = all_mounts
    return trainer
