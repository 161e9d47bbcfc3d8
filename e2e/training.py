"""Real-training TorchJobs for process nodes: `torchrun -m workloads.train` on CPU (gloo), a tiny
deterministic MLP, checkpoints on storage every node shares (an `nfs` volume, which process nodes map to one
rig directory)."""

from __future__ import annotations

import secrets
from typing import Any

from controller.runtime.objects import JsonObject
from e2e.cluster.process_nodes import ProcessNodePool

TOTAL_STEPS = 40
RENDEZVOUS: JsonObject = {"joinTimeout": "120s", "lastCallTimeout": "1s", "keepAliveInterval": "1s"}


def train_args(total_steps: int = TOTAL_STEPS, step_sleep: float = 0.1, global_batch: int = 16) -> list[str]:
    """A tiny deterministic run: the same args give bitwise the same losses at the same world size. Every
    world size the job may train at must divide `global_batch`."""
    return [
        "--total-steps", str(total_steps),
        "--global-batch", str(global_batch),
        "--dataset-size", "256",
        "--model-width", "16",
        "--model-depth", "2",
        "--seed", "7",
        "--step-sleep", str(step_sleep),
    ]  # fmt: skip


def training_job(
    name: str,
    pool: ProcessNodePool,
    *,
    count: int = 2,
    nproc: int = 2,
    cpu: str = "1500m",
    args: list[str] | None = None,
    priority: str | None = None,
    interval: int = 10,
    **spec: Any,
) -> JsonObject:
    """A TorchJob of `count` process-node workers x `nproc` trainer processes with shared checkpoints."""
    scheduling: JsonObject = {"queue": "default", "preemptible": True}
    if priority:
        scheduling["priorityClassName"] = priority
    body: JsonObject = {
        "image": "pyroclast/workload:dev",
        "command": ["-m", "workloads.train"],
        "args": args or train_args(),
        "nprocPerNode": nproc,
        "nodes": {"count": count},
        "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}},
        "checkpoint": {
            "volume": {"nfs": {"server": "ckpt.rig.invalid", "path": f"/{name}-{secrets.token_hex(3)}"}},
            "path": "/checkpoints",
            "intervalSteps": interval,
        },
        "template": {"spec": {"nodeSelector": pool.node_selector}},
        "scheduling": scheduling,
        "rendezvous": RENDEZVOUS,
    }
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": name},
        "spec": {**body, **spec},
    }
