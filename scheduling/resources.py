"""Kubernetes quantities written back as text."""

from __future__ import annotations

from decimal import Decimal


def format_quantity(value: Decimal) -> str:
    """The shortest exact quantity string: `8`, `500m`, `1.5` stays exact as `1500m`, bytes as integers."""
    if value < 0:
        raise ValueError(f"negative quantity {value}")
    if value == value.to_integral_value():
        return str(int(value))
    milli = value * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    nano = value * 1_000_000_000
    # Kubernetes rounds sub-nano quantities up; so do we, so a gang never asks for less than its pods.
    return f"{int(nano.to_integral_value(rounding='ROUND_CEILING'))}n"
