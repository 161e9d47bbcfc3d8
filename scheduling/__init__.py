"""Volcano: the gang (PodGroup) a TorchJob runs as, and how to read what the scheduler says about it."""

from scheduling.podgroup import desired_podgroup, podgroup_name, podgroup_spec_patch
from scheduling.resources import format_quantity

__all__ = [
    "desired_podgroup",
    "format_quantity",
    "podgroup_name",
    "podgroup_spec_patch",
]
