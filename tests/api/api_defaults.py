"""Structural-schema defaulting, done the way the apiserver does it, to check the models' defaults against."""

from __future__ import annotations

import copy
from typing import Any, cast


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with every missing property that has a schema default filled in, recursively (a copy)."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        obj = cast(dict[str, Any], value)
        props = cast(dict[str, dict[str, Any]], schema.get("properties", {}))
        for name, sub in props.items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                _default(sub, obj[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in obj.values():
                _default(cast(dict[str, Any], extra), item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in cast(list[Any], value):
            _default(cast(dict[str, Any], schema["items"]), item)
