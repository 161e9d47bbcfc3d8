"""Where the cluster's binaries come from (envtest's BinPathFinder order, plus the rig's build cache)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

NAMES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "vc-scheduler",
    "vc-controller-manager",
    "coredns",
)
FALLBACK_DIR = Path("/usr/local/kubebuilder/bin")


class BinaryNotFoundError(RuntimeError):
    """A component binary is missing from every place the rig looks."""


def asset_env_var(name: str) -> str:
    """envtest's sanitising: upper-case, every non-alphanumeric run becomes `_`, leading digits dropped."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", name).upper().lstrip("0123456789")
    return f"TEST_ASSET_{cleaned}"


def candidates(name: str, env: Mapping[str, str] | None = None) -> list[Path]:
    """Every path tried for `name`, in lookup order."""
    env = os.environ if env is None else env
    paths: list[Path] = []
    if explicit := env.get(asset_env_var(name)):
        paths.append(Path(explicit))
    for var in ("KUBEBUILDER_ASSETS", "PYROCLAST_RIG_BIN"):
        if directory := env.get(var):
            paths.append(Path(directory) / name)
    paths.append(FALLBACK_DIR / name)
    return paths


def find_binary(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The first executable candidate for `name`, or a BinaryNotFoundError listing where it looked."""
    tried = candidates(name, env)
    for path in tried:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    looked = ", ".join(str(p) for p in tried)
    raise BinaryNotFoundError(
        f"binary {name!r} not found (looked at {looked}); build them with `bash e2e/build-cluster.sh` and "
        f"export KUBEBUILDER_ASSETS=<the directory it prints>"
    )


def find_all(names: tuple[str, ...] = NAMES, env: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Resolve every name; raises one error naming all missing binaries."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        try:
            found[name] = find_binary(name, env)
        except BinaryNotFoundError:
            missing.append(name)
    if missing:
        where = [str(p.parent) for p in candidates(missing[0], env)]
        raise BinaryNotFoundError(
            f"missing cluster binaries: {', '.join(missing)} (looked in {', '.join(where)}); run "
            f"`bash e2e/build-cluster.sh` and export KUBEBUILDER_ASSETS=<the directory it prints>"
        )
    return found
