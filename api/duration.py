"""Durations written the Go way ("30s", "10m", "1h30m"), as CEL's `duration()` reads them."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Final

from pydantic import StringConstraints

# Units are required and the value is positive: "0" and "-5s" are refused before any CEL rule runs.
DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
_PART_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_UNIT_SECONDS: Final = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
"""A duration such as `30s`, `10m` or `1h30m` (units ns, us, ms, s, m, h)."""


def duration_seconds(value: str) -> Decimal:
    """The length of a duration in seconds, exact."""
    if re.fullmatch(DURATION_PATTERN, value) is None:
        raise ValueError(f"{value!r} is not a duration such as 30s, 10m or 1h30m")
    return sum((Decimal(num) * _UNIT_SECONDS[unit] for num, unit in _PART_RE.findall(value)), Decimal(0))


def duration_rule(lowest: str, highest: str) -> str:
    """The CEL expression bounding a duration field between `lowest` and `highest` inclusive."""
    return f"duration(self) >= duration('{lowest}') && duration(self) <= duration('{highest}')"


def duration_message(field: str, lowest: str, highest: str) -> str:
    """The message of `duration_rule`, shared with the model's own check."""
    return f"{field} must be a duration from {lowest} to {highest}"


def check_duration(field: str, value: str, lowest: str, highest: str) -> None:
    """Raise the same complaint the apiserver makes when `value` lies outside `lowest`..`highest`."""
    if not duration_seconds(lowest) <= duration_seconds(value) <= duration_seconds(highest):
        raise ValueError(duration_message(field, lowest, highest))
