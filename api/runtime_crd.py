"""The ClusterTorchRuntime and TorchRuntime CRDs, generated from the models like the TorchJob's.

A runtime's `defaults` is typed with the TorchJob spec's own schema, so a field the TorchJob spec gains is
accepted in a runtime with the same checks on its type, enum and bounds. What that schema does for a whole
job does not hold for a part of one, so it is loosened: no field is required, no `default` is written in
(a defaulted runtime would hide the job's own defaults, and a server-filled value could not be told from one
the platform team chose), no CEL rule runs (they compare fields a part may leave out), and runtimeRef is not
there (a runtime does not name a runtime). The merged spec is checked whole when a job is resolved.
"""

from __future__ import annotations

import copy
from typing import Any, Final, cast

from api.cel import rule
from api.constants import CATEGORIES, GROUP, VERSION
from api.runtime import (
    CLUSTER_PLURAL,
    LOCKED_MESSAGE,
    NAMESPACED_PLURAL,
    RUNTIME_SHORT_NAMES,
    ClusterTorchRuntime,
    RuntimeKind,
    TorchRuntime,
    lockable_fields,
)
from api.runtime_merge import RUNTIME_REF
from api.schema import Schema, structural_schema
from api.structural import structural_violations

_LOOSENED: Final = ("default", "required", "x-kubernetes-validations")

RUNTIME_PRINTER_COLUMNS: Final[list[dict[str, Any]]] = [
    {
        "name": "Image",
        "type": "string",
        "jsonPath": ".spec.defaults.image",
        "description": "Default image of the jobs.",
    },
    {
        "name": "Queue",
        "type": "string",
        "jsonPath": ".spec.defaults.scheduling.queue",
        "description": "Default Volcano queue.",
    },
    {
        "name": "Locked",
        "type": "string",
        "jsonPath": ".spec.locked",
        "description": "Spec paths jobs may not change.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _loosen(node: Any) -> Any:
    if isinstance(node, dict):
        d = cast(dict[str, Any], node)
        return {k: _loosen(v) for k, v in d.items() if k not in _LOOSENED}
    if isinstance(node, list):
        return [_loosen(v) for v in cast(list[Any], node)]
    return node


def defaults_schema(spec: Schema) -> Schema:
    """`spec` (the TorchJob spec schema) as the schema of a runtime's `defaults` (module docstring)."""
    out = cast(Schema, _loosen(copy.deepcopy(spec)))
    cast(dict[str, Schema], out["properties"]).pop(RUNTIME_REF, None)
    # A list-map's keys must stay required in its items (the apiserver merges by them).
    _restore_map_keys(out, spec)
    out["description"] = (
        "Any part of a TorchJob spec, as in a TorchJob. A job's own values win unless locked; objects merge "
        "by key, named lists (env, volumes, containers) by name, other lists of objects (tolerations) are "
        "joined. Checked whole, merged with the job, when the job is resolved."
    )
    return out


def _restore_map_keys(loose: Any, strict: Any) -> None:
    if isinstance(loose, dict) and isinstance(strict, dict):
        lo, st = cast(dict[str, Any], loose), cast(dict[str, Any], strict)
        keys = lo.get("x-kubernetes-list-map-keys")
        if keys is not None and isinstance(lo.get("items"), dict):
            lo["items"]["required"] = list(cast(list[str], keys))
        for k, v in lo.items():
            if k in st:
                _restore_map_keys(v, st[k])


def runtime_schema(kind: RuntimeKind, job_spec: Schema) -> Schema:
    """The openAPIV3Schema of a runtime kind; `job_spec` is the TorchJob spec's schema."""
    model = ClusterTorchRuntime if kind == RuntimeKind.CLUSTER else TorchRuntime
    schema = structural_schema(model)
    props: dict[str, Schema] = schema["properties"]
    props["metadata"] = {"type": "object"}
    for key in ("apiVersion", "kind"):
        props[key] = {"description": props[key]["description"], "type": "string"}
    spec_props: dict[str, Schema] = props["spec"]["properties"]
    spec_props["defaults"] = defaults_schema(job_spec)
    pattern = "^(" + "|".join(lockable_fields()) + r")([.\\[]|$)"
    spec_props["locked"]["items"]["x-kubernetes-validations"] = [
        rule(f"self.matches('{pattern}')", LOCKED_MESSAGE)
    ]
    return schema


def runtime_crd(kind: RuntimeKind, job_spec: Schema) -> dict[str, Any]:
    """The CustomResourceDefinition of a runtime kind as a plain dict."""
    schema = runtime_schema(kind, job_spec)
    problems = structural_violations(schema)
    if problems:
        raise ValueError(f"the {kind} schema is not structural:\n" + "\n".join(problems))
    plural = CLUSTER_PLURAL if kind == RuntimeKind.CLUSTER else NAMESPACED_PLURAL
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "pyroclast"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": str(kind),
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": str(kind).lower(),
                "shortNames": list(RUNTIME_SHORT_NAMES[kind]),
                "categories": list(CATEGORIES),
            },
            "scope": "Cluster" if kind == RuntimeKind.CLUSTER else "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "additionalPrinterColumns": RUNTIME_PRINTER_COLUMNS,
                }
            ],
        },
    }
