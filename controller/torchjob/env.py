"""A worker trainer container's environment: torchrun's launcher flags (PET_*) and the workload contract.

torchrun reads every flag from `PET_<FLAG>`, so the container command is just `torchrun <spec.command>` and
the whole launcher configuration lives here, where it is tested. Names come from :mod:`api.contract`, the
contract with the training code.
"""

from __future__ import annotations

from typing import Any, Final

from api import TorchJob, contract
from api.duration import duration_seconds

RDZV_BACKEND: Final = "c10d"


def rendezvous_id(job: TorchJob, attempt: int) -> str:
    """`<job uid>-<attempt>`: a fresh id for every whole-gang restart, as a closed c10d round stays closed."""
    return f"{job.metadata.uid}-{attempt}"


def rendezvous_conf(job: TorchJob, *, is_host: bool) -> str:
    """PET_RDZV_CONF: the spec's timeouts in seconds, and is_host said explicitly (never torchrun's guess)."""
    rdzv = job.spec.rendezvous
    parts = {
        "join_timeout": _seconds(rdzv.join_timeout),
        "last_call_timeout": _seconds(rdzv.last_call_timeout),
        "close_timeout": _seconds(rdzv.close_timeout),
        "read_timeout": _seconds(rdzv.read_timeout),
        "keep_alive_interval": _seconds(rdzv.keep_alive_interval),
        "keep_alive_max_attempt": str(rdzv.keep_alive_max_attempts),
        "is_host": "1" if is_host else "0",
    }
    return ",".join(f"{k}={v}" for k, v in parts.items())


def worker_env(
    job: TorchJob,
    *,
    attempt: int,
    rendezvous_endpoint: str,
    local_addr: str,
    rendezvous_host: bool,
    resume_from: str | None = None,
    progress_url: str | None = None,
) -> list[dict[str, Any]]:
    """The trainer container's env: Pyroclast's variables first, then the user's (which admission keeps clear
    of every reserved name)."""
    spec = job.spec
    nodes = spec.nodes
    env: dict[str, str] = {
        contract.PET_NNODES: f"{nodes.min_nodes}:{nodes.max_nodes}",
        contract.PET_NPROC_PER_NODE: str(spec.nproc_per_node),
        contract.PET_RDZV_BACKEND: RDZV_BACKEND,
        contract.PET_RDZV_ENDPOINT: rendezvous_endpoint,
        contract.PET_RDZV_ID: rendezvous_id(job, attempt),
        contract.PET_RDZV_CONF: rendezvous_conf(job, is_host=rendezvous_host),
        contract.PET_MAX_RESTARTS: str(spec.rendezvous.max_restarts),
        contract.PET_LOCAL_ADDR: local_addr,
        contract.TERMINATION_LOG: contract.DEFAULT_TERMINATION_LOG,
        contract.JOB_NAME: job.metadata.name or "",
        contract.JOB_UID: job.metadata.uid or "",
        contract.ATTEMPT: str(attempt),
    }
    if nodes.elastic:
        # torchrun's shared store lives on the first rank-0 host: a rank-0 move would leave MASTER_ADDR stale.
        env[contract.TORCH_DISABLE_SHARE_RDZV_TCP_STORE] = "1"
    checkpoint = spec.checkpoint
    if checkpoint is not None:
        env[contract.CHECKPOINT_DIR] = checkpoint.path
        if checkpoint.interval_steps is not None:
            env[contract.CHECKPOINT_INTERVAL] = str(checkpoint.interval_steps)
        if checkpoint.keep is not None:
            env[contract.CHECKPOINT_KEEP] = str(checkpoint.keep)
        if resume_from is not None:
            env[contract.RESUME_FROM] = resume_from
    if progress_url is not None:
        env[contract.PROGRESS_URL] = progress_url
        env[contract.PROGRESS_TOKEN_FILE] = contract.PROGRESS_TOKEN_FILE_PATH
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    out.extend(e.to_k8s() for e in spec.env or [])
    return out


def _seconds(duration: str) -> str:
    value = duration_seconds(duration)
    return str(int(value)) if value == value.to_integral_value() else str(value.normalize())
