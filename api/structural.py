"""A checker for Kubernetes' structural-schema rules, so a bad CRD fails in unit tests, not at install."""

from __future__ import annotations

from typing import Any, Final, cast

Schema = dict[str, Any]

TYPES: Final = frozenset({"object", "array", "string", "integer", "number", "boolean"})
ALLOWED_KEYS: Final = frozenset(
    {
        "description",
        "type",
        "format",
        "enum",
        "default",
        "anyOf",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)
_PY_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}
INT_OR_STRING_ANYOF: Final = [{"type": "integer"}, {"type": "string"}]


def structural_violations(schema: Schema) -> list[str]:
    """Every way `schema` breaks the structural rules; empty when the apiserver would accept it."""
    problems: list[str] = []
    _check(schema, "", problems)
    metadata = schema.get("properties", {}).get("metadata")
    if metadata is not None:
        if set(metadata) - {"type", "description", "properties"}:
            problems.append("metadata: only name and generateName may be constrained at the root")
        if set(metadata.get("properties", {})) - {"name", "generateName"}:
            problems.append("metadata: only name and generateName may be constrained at the root")
    return problems


def undocumented(schema: Schema, path: str = "") -> list[str]:
    """Paths of properties without a description (kubectl explain would show nothing)."""
    missing: list[str] = []
    for name, sub in cast(dict[str, Schema], schema.get("properties", {})).items():
        here = f"{path}.{name}"
        root_owned = not path and name in ("metadata", "apiVersion", "kind")
        if not root_owned and not sub.get("description"):
            missing.append(here)
        missing.extend(undocumented(sub, here))
    if isinstance(schema.get("items"), dict):
        missing.extend(undocumented(cast(Schema, schema["items"]), f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        missing.extend(undocumented(cast(Schema, schema["additionalProperties"]), f"{path}{{}}"))
    return missing


def _check(node: Any, path: str, problems: list[str]) -> None:
    where = path or "<root>"
    if not isinstance(node, dict):
        problems.append(f"{where}: a schema must be an object")
        return
    node = cast(Schema, node)
    for key in node:
        if key not in ALLOWED_KEYS:
            problems.append(f"{where}: keyword {key!r} is not allowed in a CRD schema")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    kind = node.get("type")
    if kind is None:
        if not (int_or_string or preserve):
            problems.append(f"{where}: type must be set")
    elif kind not in TYPES:
        problems.append(f"{where}: unknown type {kind!r}")
    if int_or_string:
        if kind is not None:
            problems.append(f"{where}: an int-or-string node must not set type")
        if "anyOf" in node and node["anyOf"] != INT_OR_STRING_ANYOF:
            problems.append(f"{where}: int-or-string anyOf must be [integer, string]")
    elif "anyOf" in node:
        problems.append(f"{where}: anyOf is only allowed for int-or-string")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
        problems.append(f"{where}: additionalProperties must be a schema, not a boolean")
    if ("properties" in node or "additionalProperties" in node) and kind not in (None, "object"):
        problems.append(f"{where}: properties on a non-object")
    if kind == "array" and not isinstance(node.get("items"), dict):
        problems.append(f"{where}: an array needs a single items schema")
    if "items" in node and kind != "array":
        problems.append(f"{where}: items on a non-array")
    if "nullable" in node:
        problems.append(f"{where}: nullable is not used; leave optional fields out instead")
    props = cast(dict[str, Any], node.get("properties", {}))
    for name in cast(list[str], node.get("required", [])):
        if name not in props:
            problems.append(f"{where}: required field {name!r} is not a property")
    if "enum" in node and kind in _PY_TYPES:
        for value in cast(list[Any], node["enum"]):
            if not _matches(value, kind):
                problems.append(f"{where}: enum value {value!r} is not a {kind}")
    if "default" in node:
        default = node["default"]
        if default is None:
            problems.append(f"{where}: default must not be null")
        elif kind in _PY_TYPES and not _matches(default, kind):
            problems.append(f"{where}: default {default!r} is not a {kind}")
    _check_list_type(node, where, problems)
    _check_rules(node, where, problems)
    for name, sub in props.items():
        _check(sub, f"{path}.{name}", problems)
    if isinstance(node.get("items"), dict):
        _check(node["items"], f"{path}[]", problems)
    if isinstance(node.get("additionalProperties"), dict):
        _check(node["additionalProperties"], f"{path}{{}}", problems)


def _matches(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[kind])


def _check_list_type(node: Schema, where: str, problems: list[str]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    if list_type is None:
        if "x-kubernetes-list-map-keys" in node:
            problems.append(f"{where}: list-map-keys without list-type map")
        return
    if node.get("type") != "array":
        problems.append(f"{where}: x-kubernetes-list-type on a non-array")
        return
    items = cast(Schema, node.get("items", {}))
    if list_type == "set":
        if items.get("type") not in ("string", "integer", "number", "boolean"):
            problems.append(f"{where}: a set list needs scalar items")
    elif list_type == "map":
        keys = cast(list[str], node.get("x-kubernetes-list-map-keys", []))
        if not keys:
            problems.append(f"{where}: a map list needs x-kubernetes-list-map-keys")
        item_props = cast(dict[str, Schema], items.get("properties", {}))
        for key in keys:
            prop = item_props.get(key)
            if prop is None:
                problems.append(f"{where}: map key {key!r} is not an item property")
            elif key not in items.get("required", []) and "default" not in prop:
                problems.append(f"{where}: map key {key!r} must be required or defaulted")
            elif prop.get("type") not in ("string", "integer", "boolean"):
                problems.append(f"{where}: map key {key!r} must be a scalar")
    elif list_type != "atomic":
        problems.append(f"{where}: unknown list-type {list_type!r}")


def _check_rules(node: Schema, where: str, problems: list[str]) -> None:
    for entry in cast(list[Any], node.get("x-kubernetes-validations", [])):
        if not isinstance(entry, dict) or not isinstance(cast(Schema, entry).get("rule"), str):
            problems.append(f"{where}: a validation needs a rule")
            continue
        entry = cast(Schema, entry)
        if not (entry.get("message") or entry.get("messageExpression")):
            problems.append(f"{where}: rule {entry['rule']!r} has no message")
        unknown = set(entry) - {
            "rule",
            "message",
            "messageExpression",
            "fieldPath",
            "reason",
            "optionalOldSelf",
        }
        if unknown:
            problems.append(f"{where}: rule {entry['rule']!r} has unknown keys {sorted(unknown)}")
