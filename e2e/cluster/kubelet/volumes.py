"""A pod's volumes as host directories, bind-mounted into each container's mount namespace by the sandbox.

emptyDir is a directory of the pod (`medium: Memory` under the host's /dev/shm, i.e. tmpfs-backed);
persistentVolumeClaim is a directory per namespace/claim shared by every node of the rig and kept after
the pod, so checkpoints survive restarts (there is no provisioner: the claim object itself is not consulted),
and an `nfs` volume is a directory per server/export, shared the same way (no NFS traffic: the rig's stand-in
for shared storage, which needs no PersistentVolume binding before Volcano schedules the pod);
configMap, secret, downwardAPI and projected volumes (serviceAccountToken minted with TokenRequest, bound to
the pod, refreshed at 80 % of its lifetime like the kubelet) are files written before the container starts.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.cluster.kubelet.client import KubeClient
from e2e.cluster.kubelet.env import EnvError, Fetch, field_value, resource_value

JSON = dict[str, Any]
DEFAULT_TOKEN_SECONDS = 3607


class VolumeError(EnvError):
    """A volume that cannot be set up (unsupported type, missing object)."""


@dataclass
class Token:
    """A projected token file and when to renew it."""

    path: Path
    service_account: str
    audience: str | None
    seconds: int
    renew_at: float = 0.0


@dataclass
class PodVolumes:
    """Host paths of one pod's volumes by name, and its tokens to refresh."""

    paths: dict[str, Path] = field(default_factory=dict[str, Path])
    tokens: list[Token] = field(default_factory=list[Token])


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    os.replace(tmp, path)


def _items(
    data: Mapping[str, bytes], items: list[JSON] | None, optional: bool, what: str
) -> dict[str, bytes]:
    if not items:
        return dict(data)
    out: dict[str, bytes] = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeError(f"{what}: key {item['key']!r} not found")
        out[item["path"]] = data[item["key"]]
    return out


async def _object_files(fetch: Fetch, kind: str, source: JSON) -> dict[str, bytes]:
    name = source.get("name") or source.get("secretName") or ""
    obj = await fetch(kind, name)
    what = f"{kind[:-1]} {name!r}"
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumeError(f"{what} not found")
    data: dict[str, bytes] = {}
    if kind == "secrets":
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    else:
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return _items(data, source.get("items"), bool(source.get("optional")), what)


def _downward_files(pod: JSON, source: JSON, allocatable: Mapping[str, str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    for item in source.get("items") or []:
        if "fieldRef" in item:
            out[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"]).encode()
        elif "resourceFieldRef" in item:
            ref = item["resourceFieldRef"]
            container = containers.get(ref.get("containerName") or "", {})
            out[item["path"]] = resource_value(container, ref, allocatable).encode()
    return out


async def mint_token(client: KubeClient, pod: JSON, token: Token) -> None:
    """TokenRequest bound to the pod; write it and schedule renewal at 80 % of its lifetime."""
    meta = pod["metadata"]
    spec: JSON = {
        "expirationSeconds": token.seconds,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
    }
    if token.audience:
        spec["audiences"] = [token.audience]
    path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{token.service_account}/token"
    answer = await client.request("POST", path, {"spec": spec})
    status = (answer or {}).get("status") or {}
    _write(token.path, status["token"])
    expires = datetime.datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00"))
    lifetime = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
    token.renew_at = time.monotonic() + max(1.0, 0.8 * lifetime)


async def prepare(
    pod: JSON,
    pod_dir: Path,
    memory_dir: Path,
    claims_root: Path,
    client: KubeClient,
    fetch: Fetch,
    allocatable: Mapping[str, str],
) -> PodVolumes:
    """Create every volume of the pod on the host; raise VolumeError for what the rig cannot provide."""
    result = PodVolumes()
    namespace = pod["metadata"]["namespace"]
    sa = pod["spec"].get("serviceAccountName") or "default"
    for vol in pod["spec"].get("volumes") or []:
        name = vol["name"]
        base = pod_dir / "volumes" / name
        files: dict[str, bytes] = {}
        if "emptyDir" in vol:
            if (vol["emptyDir"] or {}).get("medium") == "Memory":
                base = memory_dir / name
            base.mkdir(parents=True, exist_ok=True)
            base.chmod(0o777)
        elif "persistentVolumeClaim" in vol:
            base = claims_root / namespace / vol["persistentVolumeClaim"]["claimName"]
            base.mkdir(parents=True, exist_ok=True)
            base.chmod(0o777)  # writable whatever user the pods run as (fsGroup's effect, simplified)
        elif "nfs" in vol:
            nfs = vol["nfs"]
            base = claims_root / "nfs" / nfs["server"] / nfs["path"].strip("/")
            base.mkdir(parents=True, exist_ok=True)
            base.chmod(0o777)
        elif "configMap" in vol:
            files = await _object_files(fetch, "configmaps", vol["configMap"])
        elif "secret" in vol:
            files = await _object_files(fetch, "secrets", vol["secret"])
        elif "downwardAPI" in vol:
            files = _downward_files(pod, vol["downwardAPI"], allocatable)
        elif "projected" in vol:
            for source in vol["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    t = source["serviceAccountToken"]
                    token = Token(
                        path=base / t["path"],
                        service_account=sa,
                        audience=t.get("audience"),
                        seconds=int(t.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS),
                    )
                    await mint_token(client, pod, token)
                    result.tokens.append(token)
                elif "configMap" in source:
                    files.update(await _object_files(fetch, "configmaps", source["configMap"]))
                elif "secret" in source:
                    files.update(await _object_files(fetch, "secrets", source["secret"]))
                elif "downwardAPI" in source:
                    files.update(_downward_files(pod, source["downwardAPI"], allocatable))
        else:
            kinds = sorted(set(vol) - {"name"})
            raise VolumeError(f"volume {name!r}: type {kinds} is not supported on process nodes")
        base.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            _write(base / rel, content)
        result.paths[name] = base
    return result


async def refresh_tokens(client: KubeClient, pod: JSON, volumes: PodVolumes) -> None:
    """Renew tokens that reached 80 % of their lifetime."""
    for token in volumes.tokens:
        if time.monotonic() >= token.renew_at:
            await mint_token(client, pod, token)


def remove(pod_dir: Path, memory_dir: Path) -> None:
    """Drop the pod's own volumes (claims stay)."""
    shutil.rmtree(pod_dir / "volumes", ignore_errors=True)
    shutil.rmtree(memory_dir, ignore_errors=True)
