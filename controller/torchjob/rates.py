"""The prices an admin sets once, per resource-hour, optionally per Volcano queue; and a job's cost at them.

The file (``pyroclast run --rates FILE``, YAML or JSON; in Helm the ``rates`` value, mounted from a
ConfigMap)::

    currency: USD
    perHour: {gpu: 2.50, cpu: 0.04, memoryGiB: 0.005}
    queues:                       # a queue's own prices, each falling back to perHour
      spot: {gpu: 0.90}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationError

from api.accounting import ResourceSeconds
from api.base import KubeModel

Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class HourlyPrices(KubeModel):
    """Prices of one resource-hour; an absent one falls back to the default prices (else 0)."""

    gpu: Price | None = Field(default=None, description="Per GPU-hour.")
    cpu: Price | None = Field(default=None, description="Per CPU-hour.")
    memory_gi_b: Price | None = Field(default=None, description="Per memory GiB-hour.")


class Rates(KubeModel):
    """The operator's rates: default prices and per-queue prices."""

    currency: Annotated[str, Field(min_length=1, max_length=16)] = Field(
        default="USD", description="Currency."
    )
    per_hour: HourlyPrices = Field(default_factory=HourlyPrices, description="Default prices.")
    queues: dict[str, HourlyPrices] = Field(default_factory=dict[str, HourlyPrices], description="Per queue.")

    def prices(self, queue: str) -> tuple[float, float, float]:
        """(GPU, CPU, memory GiB) prices per hour in `queue`."""
        own = self.queues.get(queue, HourlyPrices())
        default = self.per_hour

        def pick(mine: float | None, fallback: float | None) -> float:
            return mine if mine is not None else (fallback if fallback is not None else 0.0)

        return (
            pick(own.gpu, default.gpu),
            pick(own.cpu, default.cpu),
            pick(own.memory_gi_b, default.memory_gi_b),
        )

    def cost(self, held: ResourceSeconds, queue: str) -> float:
        """What `held` costs in `queue`."""
        gpu, cpu, memory = self.prices(queue)
        return (held.gpu_seconds * gpu + held.cpu_seconds * cpu + held.memory_gi_b_seconds * memory) / 3600.0


class RatesError(ValueError):
    """A rates file that cannot be used, with what to fix."""


def load_rates(path: Path) -> Rates:
    """Read a rates file; a clear error naming the field when it is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise RatesError(f"--rates {path}: cannot read it: {err}") from err
    try:
        return Rates.model_validate(data or {})
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors()
        )
        raise RatesError(
            f"--rates {path}: {problems} (expected currency, perHour {{gpu, cpu, memoryGiB}} and queues "
            "{NAME: {gpu, cpu, memoryGiB}}, prices per hour >= 0)"
        ) from err
