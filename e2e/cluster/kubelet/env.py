"""A container's environment and command line, resolved as the kubelet does (env, envFrom, $(VAR))."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from api.quantity import parse_quantity
from e2e.cluster.kubelet.images import ImageConfig

JSON = dict[str, Any]
Fetch = Callable[[str, str], Awaitable[JSON | None]]
"""(kind "configmaps"/"secrets", name) -> the object or None."""

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class EnvError(RuntimeError):
    """A reference that cannot be resolved (the kubelet's CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, unknown references stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _REF.sub(sub, text)


def field_value(pod: JSON, path: str) -> str:
    """A downward-API fieldRef."""
    meta = pod.get("metadata", {})
    status = pod.get("status", {})
    spec = pod.get("spec", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(a["ip"] for a in status.get("hostIPs") or []),
        "status.podIPs": ",".join(a["ip"] for a in status.get("podIPs") or []),
    }
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    if path not in simple:
        raise EnvError(f"unsupported fieldRef fieldPath {path!r}")
    return "" if simple[path] is None else str(simple[path])


def resource_value(container: JSON, ref: JSON, allocatable: Mapping[str, str]) -> str:
    """A resourceFieldRef: the container's limit (node allocatable when unset) or request, over the divisor,
    rounded up (cpu to whole cores for the default divisor 1)."""
    resource: str = ref["resource"]
    kind, _, name = resource.partition(".")
    resources: JSON = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None:
        value = (
            allocatable.get(name, "0") if kind == "limits" else (resources.get("limits") or {}).get(name, "0")
        )
    amount = parse_quantity(str(value))
    divisor = parse_quantity(str(ref.get("divisor") or "0")) or parse_quantity("1")  # defaulted to 0: 1
    return str(math.ceil(amount / divisor))


async def _key(fetch: Fetch, kind: str, ref: JSON) -> str | None:
    obj = await fetch(kind, ref["name"])
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise EnvError(f"{kind[:-1]} {ref['name']!r} not found")
    if kind == "secrets":
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        data.update(obj.get("stringData") or {})
    else:
        data = dict(obj.get("data") or {})
    if ref["key"] not in data:
        if optional:
            return None
        raise EnvError(f"key {ref['key']!r} not found in {kind[:-1]} {ref['name']!r}")
    return str(data[ref["key"]])


async def container_env(
    pod: JSON, container: JSON, fetch: Fetch, allocatable: Mapping[str, str], service_env: Mapping[str, str]
) -> dict[str, str]:
    """envFrom first, then env in order (each value expanded against what came before), service variables
    underneath, exactly as the kubelet composes them."""
    env: dict[str, str] = dict(service_env)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        kind, ref = (
            ("configmaps", source.get("configMapRef"))
            if "configMapRef" in source
            else ("secrets", source.get("secretRef"))
        )
        if ref is None:
            continue
        obj = await fetch(kind, ref["name"])
        if obj is None:
            if ref.get("optional"):
                continue
            raise EnvError(f"{kind[:-1]} {ref['name']!r} not found (envFrom)")
        data: dict[str, str] = dict(obj.get("data") or {})
        if kind == "secrets":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        for k, v in data.items():
            env[prefix + k] = v
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = resource_value(container, source["resourceFieldRef"], allocatable)
        elif "configMapKeyRef" in source:
            value = await _key(fetch, "configmaps", source["configMapKeyRef"])
            if value is not None:
                env[name] = value
        elif "secretKeyRef" in source:
            value = await _key(fetch, "secrets", source["secretKeyRef"])
            if value is not None:
                env[name] = value
    return env


def command_line(container: JSON, env: Mapping[str, str], image: ImageConfig | None) -> list[str]:
    """The kubelet's rule: `command` replaces the image's ENTRYPOINT (and drops its CMD), `args` replace CMD;
    $(VAR) references expand. Without a known image config (see `images`), `command` is required."""
    command = [expand(c, env) for c in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if not command and image is not None:
        command = list(image.entrypoint)
        args = args if "args" in container else list(image.cmd)
    argv = command + args
    if not argv:
        raise EnvError(
            f"container {container.get('name')!r} has no command: process nodes pull no image, so an image "
            "other than the project's own (deploy/images) needs `command`"
        )
    return argv
