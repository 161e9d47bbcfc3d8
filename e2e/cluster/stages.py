"""kwok's `--config`: its options, the curated upstream stages (module cache) and the project's test-outcome
stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Relative to <kwok module>/kustomize/stage. pod-complete is deliberately absent: it completes any Running pod
# owned by a `Job` kind (Volcano's included); tests choose outcomes with the project stages instead.
UPSTREAM_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-delete.yaml",
    "pod/chaos/pod-container-running-failed.yaml",
    "node/chaos/node-not-ready.yaml",
)
PROJECT_STAGE_DIR = Path(__file__).resolve().parent / "stages"

# Every real node has a kubelet of its own; kwok plays all the rig's nodes from one worker pool (4 by
# default), so a gang restart of hundreds of pods waited on that pool to finish deletions no kubelet would
# have kept waiting.
STAGE_PARALLELISM = 16

# kwok (v0.8) defaults its options only when no configuration is given: one given states every defaulted
# option, here at kwok's own defaults but for the stage parallelism (the rig's flags override the rest).
CONFIGURATION: dict[str, Any] = {
    "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
    "kind": "KwokConfiguration",
    "options": {
        "manageAllNodes": False,
        "enableDebuggingHandlers": True,
        "enableContentionProfiling": False,
        "enableProfilingHandler": True,
        "podPlayStageParallelism": STAGE_PARALLELISM,
        "nodePlayStageParallelism": STAGE_PARALLELISM,
        "nodeLeaseParallelism": 4,
        "podsOnNodeSyncParallelism": 1,
        "enablePodsOnNodeSyncListPager": True,
        "enablePodsOnNodeSyncStreamWatch": False,
    },
}


def _load(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        if doc.get("kind") != "Stage":
            raise ValueError(f"{path}: expected only kwok Stage documents, found kind {doc.get('kind')!r}")
    return docs


def stage_documents(kwok_module_dir: Path) -> list[dict[str, Any]]:
    """Upstream stages (read from the kwok module) followed by every project stage."""
    base = kwok_module_dir / "kustomize" / "stage"
    docs: list[dict[str, Any]] = []
    for rel in UPSTREAM_STAGES:
        path = base / rel
        if not path.is_file():
            raise FileNotFoundError(f"kwok stage {rel} missing from {base}")
        docs += _load(path)
    for path in sorted(PROJECT_STAGE_DIR.glob("*.yaml")):
        docs += _load(path)
    names = [d["metadata"]["name"] for d in docs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate stage names: {names}")
    return docs


def write_stages(kwok_module_dir: Path, path: Path) -> Path:
    """Write the combined kwok `--config` file (options, then stages; YAML anchors resolved) and return its
    path."""
    docs = [CONFIGURATION, *stage_documents(kwok_module_dir)]
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path
