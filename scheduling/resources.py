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


_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_DECIMAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def display_quantity(value: Decimal) -> str:
    """A quantity as people write it, still exact: `64Gi` for 68719476736, `1500M`, `8`, `500m`.

    The largest binary suffix (Ki..Ei) that divides a whole number, else the largest decimal one (k..E), else
    :func:`format_quantity`; so memory reads `64Gi` wherever it came from (the spec as written, or the
    bytes the scheduler reports in a queue's status).
    """
    if value >= 1024 and value == value.to_integral_value():
        whole = int(value)
        for suffix, size in (*_BINARY, *_DECIMAL):
            if whole % size == 0:
                return f"{whole // size}{suffix}"
    return format_quantity(value)
