"""The kwok stage set: curated upstream stages (module cache) plus the project test-outcome stages."""

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
    """Write the combined kwok `--config` file (YAML anchors resolved) and return its path."""
    path.write_text(yaml.safe_dump_all(stage_documents(kwok_module_dir), sort_keys=False))
    return path
