"""Volcano pieces the rig installs: the scheduler configuration and the CRDs from the module cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Actions include preempt and reclaim (the upstream default has neither). Plugins follow the Helm chart:
# gang and drf are not preemptable-voters, so job priority decides preemption within a queue.
# network-topology-aware (as in Volcano's own CI configuration) gives allocate the HyperNode tiers a gang with
# a hard networkTopology may span; without it such a gang is placed as if it had none. Its HyperNode
# bin-packing of pods without a topology is off, so HyperNodes one test creates never move other tests' pods.
SCHEDULER_CONF: dict[str, Any] = {
    "actions": "enqueue, allocate, preempt, reclaim, backfill",
    "tiers": [
        {
            "plugins": [
                {"name": "priority"},
                {"name": "gang", "enablePreemptable": False},
                {"name": "conformance"},
            ]
        },
        {
            "plugins": [
                {"name": "overcommit"},
                {"name": "drf", "enablePreemptable": False},
                {"name": "predicates"},
                {"name": "proportion"},
                {"name": "nodeorder"},
                {"name": "binpack"},
                {
                    "name": "network-topology-aware",
                    "arguments": {"hypernode.binpack.normal-pod.enable": False},
                },
            ]
        },
    ],
}

# vc-controller-manager: the queue controller opens queues; pg-controller gives bare volcano pods a PodGroup.
CONTROLLERS = ("queue-controller", "pg-controller")
# Volcano's own job controller, on request only (`Cluster(volcano_jobs=True)`): the benchmarks' Go peer. Its
# sync threads match the operator's 16 workers in the benchmarks (upstream's default is 3).
JOB_CONTROLLER = "job-controller"
JOB_WORKER_THREADS = 16


def write_scheduler_conf(path: Path) -> Path:
    """Write the scheduler configuration file and return its path."""
    path.write_text(yaml.safe_dump(SCHEDULER_CONF, sort_keys=False))
    return path


def crd_documents(volcano_module_dir: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition under config/crd/volcano/bases of the pinned Volcano module."""
    base = volcano_module_dir / "config" / "crd" / "volcano" / "bases"
    files = sorted(base.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no Volcano CRDs in {base}")
    docs: list[dict[str, Any]] = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs
