"""Resource arithmetic for gangs: one node's requests, times the gang size, in Kubernetes quantity form."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from api import TorchJobSpec
from api.quantity import parse_quantity


def node_requests(spec: TorchJobSpec) -> dict[str, Decimal]:
    """What one worker pod's trainer requests. As in Kubernetes, a limit without a request is the request."""
    resources = spec.resources
    if resources is None:
        return {}
    merged: dict[str, Decimal] = {k: parse_quantity(v) for k, v in (resources.limits or {}).items()}
    merged.update({k: parse_quantity(v) for k, v in (resources.requests or {}).items()})
    return merged


def scale_resources(per_node: Mapping[str, Decimal], nodes: int) -> dict[str, str]:
    """`per_node` times `nodes`, as quantity strings, zero entries dropped, keys sorted."""
    return {k: format_quantity(v * nodes) for k, v in sorted(per_node.items()) if v * nodes != 0}


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
