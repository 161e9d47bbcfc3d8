"""The generated CRD: structural, documented, bounded, CEL rules that parse, defaults equal to the models'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import celpy  # pyright: ignore[reportMissingTypeStubs]
import pytest
import yaml
from celpy.celparser import CELParseError  # pyright: ignore[reportMissingTypeStubs]

from api import TorchJob
from api.crd import (
    CRD_FILENAME,
    PRINTER_COLUMNS,
    RUNTIME_CRD_FILENAMES,
    SCALE,
    render,
    render_all,
    render_runtime,
    torchjob_crd,
    torchjob_schema,
)
from api.structural import structural_violations, undocumented
from pyroclast.cli import main
from tests.api.api_cases import base_job
from tests.api.api_defaults import apply_defaults

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_CRD = ROOT / "deploy" / "crd" / CRD_FILENAME
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("torchjob-*.yaml"))

Node = dict[str, Any]


def walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every schema node with its path."""
    yield path, node
    for name, sub in cast(dict[str, Node], node.get("properties", {})).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(cast(Node, node["items"]), f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(cast(Node, node["additionalProperties"]), f"{path}{{}}")


def all_rules() -> list[tuple[str, Node]]:
    return [
        (path, r) for path, node in walk(torchjob_schema()) for r in node.get("x-kubernetes-validations", [])
    ]


def test_schema_is_structural() -> None:
    assert structural_violations(torchjob_schema()) == []


@pytest.mark.parametrize(
    ("schema", "complaint"),
    [
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}, "keyword '$ref'"),
        ({"type": "object", "properties": {"a": {"description": "untyped"}}}, ".a: type must be set"),
        (
            {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
            "anyOf is only allowed for int-or-string",
        ),
        ({"type": "object", "additionalProperties": False}, "must be a schema, not a boolean"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            },
            "mutually exclusive",
        ),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "keyword 'uniqueItems'"),
        ({"type": "string", "title": "T"}, "keyword 'title'"),
        ({"type": "string", "default": None}, "default must not be null"),
        ({"type": "integer", "default": "1"}, "default '1' is not a integer"),
        ({"type": "array"}, "needs a single items schema"),
        ({"type": "string", "enum": ["a", 1]}, "enum value 1 is not a string"),
        (
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            "must be required or defaulted",
        ),
        (
            {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object"}},
            "a set list needs scalar items",
        ),
        ({"type": "object", "x-kubernetes-validations": [{"rule": "true"}]}, "has no message"),
        ({"x-kubernetes-int-or-string": True, "type": "string"}, "must not set type"),
        ({"type": "object", "properties": {"metadata": {"type": "object", "required": ["x"]}}}, "metadata"),
    ],
)
def test_checker_catches_non_structural_schemas(schema: Node, complaint: str) -> None:
    problems = structural_violations(schema)
    assert any(complaint in p for p in problems), problems


def test_pydantic_quirks_are_gone() -> None:
    for path, node in walk(torchjob_schema()):
        assert not {"$ref", "$defs", "title", "const", "nullable"} & set(node), path
        assert node.get("default", ...) is not None, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path


def test_every_field_is_documented() -> None:
    assert undocumented(torchjob_schema()) == []


def test_lists_maps_and_strings_are_bounded_for_cel_cost() -> None:
    for path, node in walk(torchjob_schema()):
        kind = node.get("type")
        if kind == "array":
            assert "maxItems" in node, path
        if kind == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path
        if kind == "string" and path not in (".apiVersion", ".kind"):
            assert "maxLength" in node or "enum" in node or node.get("format") == "date-time", path


def test_cel_rules_parse_and_carry_messages() -> None:
    env = celpy.Environment()
    rules = all_rules()
    assert len(rules) >= 20
    for path, entry in rules:
        env.compile(entry["rule"])  # raises CELParseError on a syntax error
        assert entry.get("message") or entry.get("messageExpression"), path
        if "messageExpression" in entry:
            env.compile(entry["messageExpression"])
        if "fieldPath" in entry:
            field = entry["fieldPath"].lstrip(".")
            owner = dict(walk(torchjob_schema()))[path]
            assert field in owner.get("properties", {}), (
                f"{path}: fieldPath {entry['fieldPath']} is not a field"
            )


def test_cel_parser_refuses_broken_rules() -> None:
    with pytest.raises(CELParseError):
        celpy.Environment().compile("self.min <= ")


def test_transition_rules_guard_optional_fields() -> None:
    # oldSelf on an optional field without has() would error on the first update that adds it.
    schema = dict(walk(torchjob_schema()))
    for path, entry in all_rules():
        if "oldSelf" not in entry["rule"]:
            continue
        parent, _, name = path.rpartition(".")
        owner = schema[parent] if path else {}
        required = name in owner.get("required", []) or "default" in schema[path]
        assert required or "has(" in entry["rule"], path


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED_CRD.read_text(encoding="utf-8") == render(), (
        "deploy/crd is stale: run `pyroclast crd --write deploy/crd`"
    )
    for kind, name in RUNTIME_CRD_FILENAMES.items():
        assert (COMMITTED_CRD.parent / name).read_text(encoding="utf-8") == render_runtime(kind), (
            "deploy/crd is stale: run `make crd`"
        )


def test_render_is_deterministic() -> None:
    assert render() == render()


def test_crd_names_subresources_and_columns() -> None:
    crd = torchjob_crd()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "torchjobs.pyroclast.dev"
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "TorchJob",
        "torchjobs",
        ["tj"],
        ["pyroclast"],
    )
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}, "scale": SCALE}
    schema = dict(walk(version["schema"]["openAPIV3Schema"]))
    assert schema[SCALE["specReplicasPath"]]["type"] == "integer"
    assert schema[SCALE["statusReplicasPath"]]["type"] == "integer"
    assert schema[SCALE["labelSelectorPath"]]["type"] == "string"
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Ready", "Desired", "Queue", "Restarts", "Preemptions", "Checkpoint", "Age"} <= set(
        columns
    )
    for column in PRINTER_COLUMNS:
        if column["jsonPath"].startswith(".metadata"):
            continue
        assert column["jsonPath"] in schema, column


def test_schema_defaults_equal_model_defaults() -> None:
    schema = torchjob_schema()
    minimal = {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": "m"},
        "spec": {"image": "i", "command": ["t.py"]},
    }
    docs = [base_job(), minimal]
    docs += [yaml.safe_load(p.read_text()) for p in EXAMPLES]
    for doc in docs:
        assert apply_defaults(schema, doc) == TorchJob.model_validate(doc).to_k8s()


def test_cli_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    out = capsys.readouterr().out
    assert out == render_all()
    kinds = [d["spec"]["names"]["kind"] for d in yaml.safe_load_all(out)]
    assert kinds == ["TorchJob", "ClusterTorchRuntime", "TorchRuntime"]


def test_cli_writes_the_crd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd", "--write", str(tmp_path / "crd")]) == 0
    written = tmp_path / "crd" / CRD_FILENAME
    assert written.read_text(encoding="utf-8") == render()
    out = capsys.readouterr().out
    assert str(written) in out
    assert yaml.safe_load(written.read_text())["kind"] == "CustomResourceDefinition"
    for kind, name in RUNTIME_CRD_FILENAMES.items():
        runtime = tmp_path / "crd" / name
        assert runtime.read_text(encoding="utf-8") == render_runtime(kind)
        assert str(runtime) in out
