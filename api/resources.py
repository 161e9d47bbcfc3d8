"""Compute resources of one node (one worker pod running nprocPerNode processes)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, model_validator

from api.base import KubeModel
from api.cel import rule, rules
from api.quantity import Quantity, parse_quantity

_LIMITS_CEL = (
    "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || "
    "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)"
)


class ResourceRequirements(KubeModel):
    """Compute resources of one node's trainer container (all its processes together)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule(_LIMITS_CEL, "resources.requests must not exceed resources.limits", field_path=".requests")
        )
    )

    requests: Annotated[dict[str, Quantity], Field(max_length=32)] | None = Field(
        default=None, description="Minimum resources per node, e.g. cpu: 8, memory: 64Gi, nvidia.com/gpu: 8."
    )
    limits: Annotated[dict[str, Quantity], Field(max_length=32)] | None = Field(
        default=None,
        description="Maximum resources per node. Extended resources such as nvidia.com/gpu are "
        "requested here; requests default to limits.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.requests and self.limits:
            for key, value in self.requests.items():
                if key in self.limits and parse_quantity(value) > parse_quantity(self.limits[key]):
                    raise ValueError("resources.requests must not exceed resources.limits")
        return self
