"""How many nodes (worker pods, one torchrun agent each) a TorchJob runs on, and processes per node."""

from __future__ import annotations

from typing import Annotated, Final, Self

from pydantic import AfterValidator, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema, model_validator

from api.base import KubeModel
from api.cel import rule, rules

MAX_NODES: Final = 4096
MAX_NPROC: Final = 1024
NPROC_MESSAGE: Final = f"nprocPerNode must be an integer from 1 to {MAX_NPROC} or one of auto, gpu, cpu"

NPROC_WORDS: Final = ("auto", "gpu", "cpu")


def _check_nproc(value: int | str) -> int | str:
    if isinstance(value, int) and 1 <= value <= MAX_NPROC:
        return value
    if isinstance(value, str) and value in NPROC_WORDS:
        return value
    raise ValueError(NPROC_MESSAGE)


NprocPerNode = Annotated[
    StrictInt | StrictStr,
    AfterValidator(_check_nproc),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            **rules(
                rule(
                    f"type(self) == int ? (self >= 1 && self <= {MAX_NPROC})"
                    " : self in ['auto', 'gpu', 'cpu']",
                    NPROC_MESSAGE,
                )
            ),
        }
    ),
]
"""Processes per node: a count, or auto (one per GPU, else per CPU), gpu or cpu."""

NodeCount = Annotated[StrictInt, Field(ge=1, le=MAX_NODES)]

_MIN_MESSAGE: Final = "nodes.min must be less than or equal to nodes.count"
_MAX_MESSAGE: Final = "nodes.count must be less than or equal to nodes.max"
_PAIR_MESSAGE: Final = "nodes.min and nodes.max must be set together"


class Nodes(KubeModel):
    """Node count. A fixed job sets only count; an elastic job also sets min and max.

    Pyroclast creates `count` worker pods, the Volcano gang needs `min` of them (count for a fixed job) and
    torchrun runs with --nnodes=min:max, so `kubectl scale` between min and max joins or drops nodes without
    a restart of the whole job.
    """

    model_config = ConfigDict(
        json_schema_extra=rules(
            rule("has(self.min) == has(self.max)", _PAIR_MESSAGE, field_path=".max"),
            rule("!has(self.min) || self.min <= self.count", _MIN_MESSAGE, field_path=".min"),
            rule("!has(self.max) || self.count <= self.max", _MAX_MESSAGE, field_path=".count"),
            rule(
                "has(self.min) == has(oldSelf.min) && (!has(self.min) || self.min == oldSelf.min)",
                "nodes.min is immutable",
                field_path=".min",
            ),
            rule(
                "has(self.max) == has(oldSelf.max) && (!has(self.max) || self.max == oldSelf.max)",
                "nodes.max is immutable",
                field_path=".max",
            ),
        )
    )

    count: NodeCount = Field(
        default=1,
        description="Worker pods to run now; the target of the scale subresource (kubectl scale). Within "
        "min..max an elastic job resizes in place; a fixed-size job restarts its gang at the new size.",
    )
    min: NodeCount | None = Field(
        default=None,
        description="Elastic jobs: the fewest nodes training continues with (the gang minimum). Immutable.",
    )
    max: NodeCount | None = Field(
        default=None, description="Elastic jobs: the most nodes the job may scale to. Immutable."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.min is None) != (self.max is None):
            raise ValueError(_PAIR_MESSAGE)
        if self.min is not None and self.min > self.count:
            raise ValueError(_MIN_MESSAGE)
        if self.max is not None and self.count > self.max:
            raise ValueError(_MAX_MESSAGE)
        return self

    @property
    def elastic(self) -> bool:
        """Whether the node count may change while training runs."""
        return self.min is not None and self.max is not None and self.min < self.max

    @property
    def min_nodes(self) -> int:
        """The gang minimum: nodes.min, or count for a fixed job."""
        return self.min if self.min is not None else self.count

    @property
    def max_nodes(self) -> int:
        """The ceiling torchrun is told: nodes.max, or count for a fixed job."""
        return self.max if self.max is not None else self.count

    def update_errors(self, old: Nodes) -> list[str]:
        """The transition rules' complaints about changing `old` into this."""
        errors: list[str] = []
        if self.min != old.min:
            errors.append("nodes.min is immutable")
        if self.max != old.max:
            errors.append("nodes.max is immutable")
        return errors
