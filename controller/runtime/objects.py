"""Typed accessors for the JSON objects the runtime handles (plain ``dict`` trees), and their one alias."""

from typing import Any, cast

JsonObject = dict[str, Any]


def _dict(value: Any) -> JsonObject:
    return cast(JsonObject, value) if isinstance(value, dict) else {}


def metadata(obj: JsonObject | None) -> JsonObject:
    """``obj.metadata`` (empty when absent)."""
    return _dict(obj.get("metadata")) if obj else {}


def labels(obj: JsonObject | None) -> dict[str, str]:
    """``metadata.labels`` (empty when absent)."""
    return cast(dict[str, str], _dict(metadata(obj).get("labels")))


def annotations(obj: JsonObject | None) -> dict[str, str]:
    """``metadata.annotations`` (empty when absent)."""
    return cast(dict[str, str], _dict(metadata(obj).get("annotations")))


def owner_references(obj: JsonObject | None) -> list[JsonObject]:
    """``metadata.ownerReferences`` (empty when absent)."""
    refs = metadata(obj).get("ownerReferences")
    return [_dict(r) for r in cast(list[Any], refs)] if isinstance(refs, list) else []


def resource_version(obj: JsonObject | None) -> str:
    """``metadata.resourceVersion`` (empty when absent)."""
    return str(metadata(obj).get("resourceVersion") or "")


def namespace(obj: JsonObject | None) -> str:
    """``metadata.namespace`` (empty for cluster-scoped objects)."""
    return str(metadata(obj).get("namespace") or "")


def name(obj: JsonObject | None) -> str:
    """``metadata.name``."""
    return str(metadata(obj).get("name") or "")
