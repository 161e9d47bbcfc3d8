"""The reference model: a small MLP whose size is set by width and depth (the benchmark makes it large)."""

from __future__ import annotations

import torch
from torch import nn

from workloads.data import FEATURES


def build_model(width: int, depth: int, seed: int) -> nn.Module:
    """An MLP ``FEATURES -> width (x depth, tanh) -> 1`` with weights drawn from ``seed``."""
    torch.manual_seed(seed)  # pyright: ignore[reportUnknownMemberType] (untyped in torch)
    layers: list[nn.Module] = []
    fan_in = FEATURES
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.Tanh()]
        fan_in = width
    layers.append(nn.Linear(fan_in, 1))
    return nn.Sequential(*layers)


def parameter_bytes(model: nn.Module) -> int:
    """Bytes held by the model's parameters."""
    return sum(p.numel() * p.element_size() for p in model.parameters())
