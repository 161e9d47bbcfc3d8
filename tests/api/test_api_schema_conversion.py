"""pydantic JSON Schema -> structural schema, on small models that exercise each rewrite."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import ConfigDict, Field

from api.base import KubeModel, OpenKubeModel
from api.cel import rule, rules
from api.schema import SchemaError, structural_schema
from api.structural import structural_violations


class Inner(KubeModel):
    """Inner doc."""

    model_config = ConfigDict(json_schema_extra=rules(rule("self.a >= 0", "a must not be negative")))

    a: int = Field(default=1, description="An integer.")


class Open(OpenKubeModel):
    """Keeps unknown fields."""

    name: str = Field(description="Name.", max_length=8)


class Toy(KubeModel):
    """Toy doc."""

    some_inner: Inner | None = Field(
        default=None,
        description="Field doc wins.",
        json_schema_extra=rules(rule("self.a <= 10", "a must be at most 10")),
    )
    kind_of: Literal["x"] = Field(default="x", description="A constant.")
    choice: Literal["a", "b"] | None = Field(default=None, description="A choice.")
    blob: dict[str, Any] | None = Field(default=None, description="Anything.")
    opens: list[Open] = Field(default_factory=list[Open], description="Open items.", max_length=3)


def test_optional_ref_is_inlined_with_both_rule_sets() -> None:
    prop = structural_schema(Toy)["properties"]["someInner"]
    assert prop["description"] == "Field doc wins."
    assert prop["type"] == "object"
    assert prop["properties"]["a"] == {"description": "An integer.", "type": "integer", "default": 1}
    assert [r["message"] for r in prop["x-kubernetes-validations"]] == [
        "a must not be negative",
        "a must be at most 10",
    ]
    assert "default" not in prop


def test_const_and_literals_become_enums() -> None:
    props = structural_schema(Toy)["properties"]
    assert props["kindOf"]["enum"] == ["x"]
    assert props["kindOf"]["type"] == "string"
    assert props["choice"]["enum"] == ["a", "b"]


def test_open_objects_preserve_unknown_fields() -> None:
    props = structural_schema(Toy)["properties"]
    assert props["blob"] == {
        "description": "Anything.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    item = props["opens"]["items"]
    assert item["x-kubernetes-preserve-unknown-fields"] is True
    assert "additionalProperties" not in item
    assert props["opens"]["maxItems"] == 3


def test_toy_schema_is_structural_and_untitled() -> None:
    schema = structural_schema(Toy)
    assert structural_violations(schema) == []
    assert "title" not in str(schema)
    assert "$ref" not in str(schema)


def test_unsupported_unions_are_refused() -> None:
    class Bad(KubeModel):
        either: int | str = Field(description="Needs an int-or-string marker.")

    with pytest.raises(SchemaError, match="anyOf is only allowed for int-or-string"):
        structural_schema(Bad)
