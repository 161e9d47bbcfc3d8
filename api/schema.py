"""Turn a pydantic model's JSON Schema into a structural OpenAPI v3 schema the apiserver accepts.

pydantic writes JSON Schema 2020-12: `$ref`s into `$defs`, `anyOf` with `null` for optional fields, `const`,
titles and `additionalProperties`. A CRD needs every node inlined and typed, `enum` instead of `const`,
`x-kubernetes-preserve-unknown-fields` for open objects and no `default: null`.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from pydantic import BaseModel

Schema = dict[str, Any]

# Keys that only describe a node for humans or for JSON Schema tooling.
_DROPPED = frozenset({"title", "$schema", "examples"})
_RULES = "x-kubernetes-validations"


class SchemaError(ValueError):
    """The model uses a construct with no structural equivalent."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of `model`, with aliases (camelCase) as property names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = cast(dict[str, Schema], raw.pop("$defs", {}))
    return _convert(raw, defs, path="")


def _resolve(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    """Inline a `$ref`, the referring node's own keys (description, default) winning."""
    ref = node.get("$ref")
    if ref is None:
        return node
    name = str(ref).removeprefix("#/$defs/")
    if name not in defs:
        raise SchemaError(f"{path or '<root>'}: unknown reference {ref}")
    return _merge(copy.deepcopy(defs[name]), {k: v for k, v in node.items() if k != "$ref"})


def _merge(base: Schema, override: Schema) -> Schema:
    """`override`'s keys win, except that CEL rules of both are kept (type's rules, then the field's)."""
    out = {**base, **override}
    rules = [*base.get(_RULES, []), *override.get(_RULES, [])]
    if rules:
        out[_RULES] = rules
    return out


def _strip_null(node: Schema) -> Schema:
    """Replace `anyOf: [X, {type: null}]` by X; a `default: null` goes with it."""
    options = node.get("anyOf")
    if options is None:
        return node
    rest = [o for o in cast(list[Schema], options) if o.get("type") != "null"]
    if len(rest) == len(options):
        return node
    out = {k: v for k, v in node.items() if k != "anyOf"}
    if out.get("default", ...) is None:
        del out["default"]
    if len(rest) == 1:
        # The field's own keys (description, default) win over the inner type's.
        return _merge(rest[0], out)
    out["anyOf"] = rest
    return out


def _convert(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    node = _strip_null(_resolve(node, defs, path))
    node = _resolve(node, defs, path)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            props = cast(dict[str, Schema], value)
            out["properties"] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in props.items()}
        elif key == "items":
            out["items"] = _convert(cast(Schema, value), defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = _convert(cast(Schema, value), defs, f"{path}{{}}")
            # False is the default for a structural schema: unknown fields are pruned or refused.
        elif key == "anyOf":
            if not node.get("x-kubernetes-int-or-string"):
                raise SchemaError(f"{path or '<root>'}: anyOf is only allowed for int-or-string fields")
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        elif key == "enum":
            out["enum"] = list(cast(list[Any], value))
        else:
            out[key] = copy.deepcopy(value)
    if "enum" in out and "type" not in out:
        out["type"] = _enum_type(cast(list[Any], out["enum"]), path)
    return _ordered(out)


def _enum_type(values: list[Any], path: str) -> str:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    raise SchemaError(f"{path}: enum mixes types")


# A stable, readable key order: what a node is, then what it holds, then how it is checked.
_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "nullable",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "required",
    "properties",
    "additionalProperties",
    "items",
)


def _ordered(node: Schema) -> Schema:
    first = [k for k in _ORDER if k in node]
    rest = sorted(k for k in node if k not in _ORDER)
    return {k: node[k] for k in (*first, *rest)}
