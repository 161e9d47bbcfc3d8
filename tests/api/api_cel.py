"""Evaluate the CRD's CEL rules in-process (cel-python) as the apiserver would, for unit-level checks.

Rules that call Kubernetes-only CEL libraries (quantity) are skipped and counted; cluster tests cover them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, cast

import celpy  # pyright: ignore[reportMissingTypeStubs]
from celpy import celtypes  # pyright: ignore[reportMissingTypeStubs]
from celpy.adapter import json_to_cel  # pyright: ignore[reportMissingTypeStubs]

MISSING: Final = object()
K8S_ONLY: Final = ("quantity(",)

_ENV = celpy.Environment()


@cache
def _program(expression: str) -> Any:
    return _ENV.program(_ENV.compile(expression))  # pyright: ignore[reportUnknownMemberType]


def _run(expression: str, activation: dict[str, Any]) -> Any:
    cel = {k: json_to_cel(v) for k, v in activation.items()}
    return _program(expression).evaluate(cel)


@dataclass
class Verdict:
    """The failing rules' messages, and how many rules could not run here."""

    failures: list[str] = field(default_factory=list[str])
    skipped: int = 0


def evaluate(schema: dict[str, Any], value: Any, old: Any = MISSING) -> Verdict:
    """Run every rule of `schema` on `value` (and transition rules against `old`, where it exists)."""
    verdict = Verdict()
    _walk(schema, value, old, verdict)
    return verdict


def _walk(schema: dict[str, Any], value: Any, old: Any, verdict: Verdict) -> None:
    for entry in cast(list[dict[str, Any]], schema.get("x-kubernetes-validations", [])):
        rule = cast(str, entry["rule"])
        if any(fn in rule for fn in K8S_ONLY):
            verdict.skipped += 1
            continue
        activation: dict[str, Any] = {"self": value}
        if "oldSelf" in rule:
            if old is MISSING:
                continue
            activation["oldSelf"] = old
        result = _run(rule, activation)
        if not (isinstance(result, celtypes.BoolType) and bool(result)):  # pyright: ignore[reportUnknownArgumentType]
            message = entry.get("message")
            if message is None:
                message = str(_run(cast(str, entry["messageExpression"]), {"self": value}))
            verdict.failures.append(cast(str, message))
    if isinstance(value, dict):
        obj = cast(dict[str, Any], value)
        props = cast(dict[str, dict[str, Any]], schema.get("properties", {}))
        old_obj = cast(dict[str, Any], old) if isinstance(old, dict) else {}
        for name, sub in props.items():
            if name in obj:
                _walk(sub, obj[name], old_obj.get(name, MISSING), verdict)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in obj.values():
                _walk(cast(dict[str, Any], extra), item, MISSING, verdict)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in cast(list[Any], value):
            _walk(cast(dict[str, Any], schema["items"]), item, MISSING, verdict)
