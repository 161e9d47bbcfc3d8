"""Kubeconfig files with embedded certificates (one cluster, one user, one current context)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster.pki import CertPair


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def kubeconfig_dict(
    server: str, ca: Path, user: str, pair: CertPair, *, name: str = "pyroclast"
) -> dict[str, Any]:
    """The kubeconfig document for `user` authenticating with a client certificate."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pair.cert),
                    "client-key-data": _b64(pair.key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path, server: str, ca: Path, user: str, pair: CertPair, *, name: str = "pyroclast"
) -> Path:
    """Write a kubeconfig (mode 0600) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig_dict(server, ca, user, pair, name=name), sort_keys=False))
    path.chmod(0o600)
    return path
