"""Locate upstream Go module directories (CRDs, kwok stages) in the rig's module cache at run time.

Nothing upstream is committed: the directories come from `go list -m -f '{{.Dir}}' <module>` run inside the
consumer module under e2e/go/<component>, with the same environment as e2e/build-cluster.sh, so the version
is whatever that consumer module pins.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

GO_DIR = Path(__file__).resolve().parent.parent / "go"

KWOK_MODULE = ("kwok", "sigs.k8s.io/kwok")
VOLCANO_MODULE = ("volcano", "volcano.sh/volcano")


class ModuleNotFoundInCacheError(RuntimeError):
    """The Go module cache does not hold a module the rig reads files from."""


def rig_cache() -> Path:
    """Same default as build-cluster.sh."""
    if explicit := os.environ.get("PYROCLAST_RIG_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyroclast-rig"


def go_env() -> dict[str, str]:
    """The environment build-cluster.sh uses for every go command."""
    env = dict(os.environ)
    env.update(
        GOFLAGS="-mod=readonly",
        GOWORK="off",
        GOTOOLCHAIN="local",
        GOMODCACHE=str(rig_cache() / "gomod"),
        GOPROXY="off",  # reading the cache must never download
    )
    return env


@functools.cache
def module_dir(component: str, module: str) -> Path:
    """The extracted source directory of `module` as pinned by e2e/go/<component>/go.mod."""
    override = os.environ.get(f"PYROCLAST_{component.upper()}_MODULE_DIR")
    if override:
        return Path(override)
    try:
        out = subprocess.run(
            ["go", "list", "-m", "-f", "{{.Dir}}", module],
            cwd=GO_DIR / component,
            env=go_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ModuleNotFoundInCacheError(f"`go` is not on PATH; cannot locate {module}") from exc
    directory = out.stdout.strip()
    if out.returncode != 0 or not directory or not Path(directory).is_dir():
        raise ModuleNotFoundInCacheError(
            f"module {module} (pinned in e2e/go/{component}) is not in the module cache "
            f"{go_env()['GOMODCACHE']}: {out.stderr.strip() or 'empty Dir'}; run `bash e2e/build-cluster.sh`"
        )
    return Path(directory)


def kwok_dir() -> Path:
    """The kwok module directory."""
    return module_dir(*KWOK_MODULE)


def volcano_dir() -> Path:
    """The Volcano module directory."""
    return module_dir(*VOLCANO_MODULE)
