"""Kubernetes resource quantities ("500m", "4Gi", 8): the wire type and a parser for comparisons."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Final

from pydantic import Field, StrictInt, StringConstraints, WithJsonSchema

_NUMBER: Final = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SUFFIX: Final = rf"(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?{_NUMBER})"
# Non-negative quantities only: a resource request or capacity below zero is never meaningful.
QUANTITY_PATTERN: Final = rf"^\+?{_NUMBER}{_SUFFIX}?$"
_QUANTITY_RE: Final = re.compile(rf"^\+?(?P<num>{_NUMBER})(?P<suffix>{_SUFFIX})?$")

_BINARY: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

Quantity = Annotated[
    Annotated[StrictInt, Field(ge=0)]
    | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "minimum": 0,
            "maxLength": 64,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A resource quantity: an integer, or a string such as `500m`, `16Gi` or `1e3`."""


def parse_quantity(value: int | str) -> Decimal:
    """The exact value of a quantity, for comparing requests with limits."""
    if isinstance(value, int):
        return Decimal(value)
    match = _QUANTITY_RE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a resource quantity")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{value!r} is not a resource quantity") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(Decimal(suffix[1:])))
