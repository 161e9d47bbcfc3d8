"""CEL rules (`x-kubernetes-validations`) attached to models and fields, with the messages both sides use."""

from __future__ import annotations

from typing import Any


def rule(
    expression: str,
    message: str | None = None,
    *,
    message_expression: str | None = None,
    field_path: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """One `x-kubernetes-validations` entry. Every rule carries a message or a message expression."""
    if message is None and message_expression is None:
        raise ValueError(f"CEL rule {expression!r} needs a message")
    out: dict[str, Any] = {"rule": expression}
    if message is not None:
        out["message"] = message
    if message_expression is not None:
        out["messageExpression"] = message_expression
    if field_path is not None:
        out["fieldPath"] = field_path
    if reason is not None:
        out["reason"] = reason
    return out


def rules(*entries: dict[str, Any]) -> dict[str, Any]:
    """A `json_schema_extra` value carrying `entries` as the node's CEL rules."""
    return {"x-kubernetes-validations": list(entries)}
