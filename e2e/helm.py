"""Helm v3 (built from its Go module by ``e2e/build-helm.sh``) and ``helm template`` of the chart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.required import missing

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "pyroclast"
KUBE_VERSION = "1.36.3"


def helm_binary() -> str:
    """helm from TEST_ASSET_HELM or e2e/build-helm.sh's cache; built only when PYROCLAST_BUILD_HELM=1."""
    script = ROOT / "e2e" / "build-helm.sh"
    if os.environ.get("TEST_ASSET_HELM") or os.environ.get("PYROCLAST_BUILD_HELM") == "1":
        return subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    cache = Path(os.environ.get("PYROCLAST_RIG_CACHE") or Path.home() / ".cache" / "pyroclast-rig")
    built = sorted((cache / "helm").glob("*/helm"))
    if not built:
        missing("helm: run `bash e2e/build-helm.sh` once, or set PYROCLAST_BUILD_HELM=1 or TEST_ASSET_HELM")
    return str(built[-1])


def helm_template(release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    """The chart's documents as `helm template` renders them with ``--set`` ``values`` (CRDs included)."""
    argv = [helm_binary(), "template", release, str(CHART), "--namespace", namespace, "--include-crds"]
    argv += ["--kube-version", KUBE_VERSION, *(f"--set={v}" for v in values)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]
