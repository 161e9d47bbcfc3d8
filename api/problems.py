# pyright: strict
"""Validation errors in a person's terms: each field's path, what is wrong and what is expected, never
pydantic's type names or the steps it adds for each member of a union type."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from api.fields import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from api.quantity import QUANTITY_PATTERN
from api.torchjob import NAME_PATTERN

# What a pattern asks for, in words (pydantic only quotes the regular expression).
PATTERN_WORDS: Final = {
    DNS_LABEL_PATTERN: "lowercase letters, digits and '-', starting and ending with a letter or digit "
    "(a DNS label, at most 63 characters, e.g. research)",
    DNS_SUBDOMAIN_PATTERN: "lowercase letters, digits, '-' and '.', each part starting and ending with a "
    "letter or digit (a DNS subdomain, e.g. train-high)",
    NAME_PATTERN: "lowercase letters, digits and '-', starting with a letter and ending with a letter or "
    "digit (e.g. llama-ft)",
    QUANTITY_PATTERN: "a quantity such as 8, 500m or 16Gi",
}
_UNION_MEMBER: Final = re.compile(
    r"^(constrained-|function-|lax-or-strict|json-or-python|tagged-union)|^(int|str|float|bool)$"
)
"""Steps pydantic adds to an error's location for each member of a union type; no field is named so."""


def explain(error: ErrorDetails) -> str:
    """What is wrong and the fix, in the field's own terms (never pydantic's type names)."""
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = f", got {error['input']!r}" if "input" in error else ""
    match error["type"]:
        case "greater_than_equal":
            return f"must be at least {ctx.get('ge')}{got}"
        case "less_than_equal":
            return f"must be at most {ctx.get('le')}{got}"
        case "string_pattern_mismatch":
            pattern = str(ctx.get("pattern", ""))
            return f"must be {PATTERN_WORDS.get(pattern, f'text matching {pattern}')}{got}"
        case "string_too_long":
            return f"must be at most {ctx.get('max_length')} characters{got}"
        case "missing":
            return "is required"
        case "value_error":
            return str(error["msg"]).removeprefix("Value error, ")
        case _:
            return f"{error['msg']}{got}"


def problems(exc: ValidationError, flag_of: Mapping[str, str] | None = None) -> str:
    """One entry per field: its path, the flag that sets it (the deepest key of `flag_of` on the path), what
    is wrong and how to fix it. A union type's members each report an error; under the field's own path the
    first is shown, unless it only says the value is of another member's type and a later one says more
    (``lots`` for a quantity: not an integer, and not a quantity string)."""
    out: dict[str, str] = {}
    vague: set[str] = set()  # fields whose error shown so far only names a type the value is not
    for error in exc.errors():
        loc = [str(p) for p in error["loc"] if not _UNION_MEMBER.search(str(p))]
        flag = next((flag_of[p] for p in reversed(loc) if flag_of and p in flag_of), None)
        where = ".".join(loc) or "(document)"
        wrong_type = error["type"].endswith("_type")
        if where in out and (where not in vague or wrong_type):
            continue
        out[where] = f"{where}{f' ({flag})' if flag else ''}: {explain(error)}"
        if wrong_type:
            vague.add(where)
        else:
            vague.discard(where)
    return "; ".join(out.values())
