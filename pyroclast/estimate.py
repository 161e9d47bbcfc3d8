# pyright: strict
"""`pyroclast job estimate`: expected duration and cost of a job at several node counts, from measured step
times (pure, no I/O).

The measurements are ``status.goodput.stepSeconds`` (running time over the steps run, redone ones included) of
the job's own earlier attempts and of finished jobs with the same effective image (the job's own, else its
runtime's) and, when both name a runtime, the same runtime, each at its ``spec.nodes.count``; the
cost per node-second is each one's ``status.usage.cost`` over its pod-seconds. A node count that was measured
is estimated from its own measurements; one that was not is estimated only when at least two node counts
were: from the power law ``t(n) = t1 * n**-b`` fitted to them (the measured scaling exponent ``b``: 1 is
linear, 0 no speed-up). Nothing is assumed beyond that: without data the answer says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Final, cast

from api import Phase, TorchJob
from pyroclast.jobview import span
from scheduling.queues import format_table


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured job: its node count, mean seconds per step, steps to run and cost per node-second."""

    job: str
    nodes: int
    step_seconds: float
    total_steps: int | None
    cost_per_node_second: float | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class Estimate:
    """The expectation at `nodes`; `seconds` None when there is no basis (`basis` says why)."""

    nodes: int
    seconds: float | None
    cost: float | None
    currency: str | None
    basis: str


def _key(job: TorchJob) -> tuple[str | None, str | None]:
    return job.metadata.namespace, job.metadata.name


@dataclass(frozen=True, slots=True)
class Match:
    """What another job must share with the estimated one: the effective image (None: unknown, so nothing
    matches) and, when both name one, the runtime (``Kind/NAME``; ``TorchRuntime/NAMESPACE/NAME``)."""

    image: str | None
    runtime: str | None

    def accepts(self, other: Match) -> bool:
        same_runtime = self.runtime is None or other.runtime is None or self.runtime == other.runtime
        return self.image is not None and self.image == other.image and same_runtime

    def describe(self) -> str:
        image = f"image {self.image}" if self.image is not None else "an unknown image"
        return image + (f" and runtime {self.runtime}" if self.runtime is not None else "")


def runtime_image(runtime_spec: Mapping[str, Any] | None) -> str | None:
    """The image a runtime's spec (``defaults``, ``locked``) gives the jobs naming it, if any."""
    defaults: Any = runtime_spec.get("defaults") if runtime_spec is not None else None
    image: Any = cast(Mapping[str, Any], defaults).get("image") if isinstance(defaults, Mapping) else None
    return image if isinstance(image, str) else None


def match_of(job: TorchJob, runtime_spec: Mapping[str, Any] | None = None) -> Match:
    """`job`'s image (its own, else the runtime recorded in its status, else `runtime_spec`: the spec of the
    runtime it names, for a job not yet resolved) and runtime."""
    ref = job.spec.runtime_ref
    runtime = None
    if ref is not None:
        where = f"{job.metadata.namespace}/" if ref.kind == "TorchRuntime" else ""
        runtime = f"{ref.kind}/{where}{ref.name}"
    record = job.status.runtime if job.status is not None else None
    image = job.spec.image or runtime_image(record.spec if record is not None else runtime_spec)
    return Match(image, runtime)


def samples(
    target: TorchJob, jobs: Iterable[TorchJob], runtime_spec: Mapping[str, Any] | None = None
) -> list[Sample]:
    """Measurements that bear on `target`: its own (any phase), and those of Succeeded jobs that
    :meth:`Match.accepts` (`runtime_spec`: see :func:`match_of`)."""
    wanted = match_of(target, runtime_spec)
    out: list[Sample] = []
    for job in jobs:
        status = job.status
        if status is None or status.goodput is None or status.goodput.step_seconds is None:
            continue
        own = _key(job) == _key(target)
        if not own and (not wanted.accepts(match_of(job)) or status.phase != Phase.SUCCEEDED):
            continue
        usage = status.usage
        per_node = None
        if usage is not None and usage.cost is not None and usage.pod_seconds > 0:
            per_node = usage.cost / usage.pod_seconds
        out.append(
            Sample(
                job=f"{job.metadata.namespace}/{job.metadata.name}",
                nodes=job.spec.nodes.count,
                step_seconds=status.goodput.step_seconds,
                total_steps=status.progress.total_steps if status.progress else None,
                cost_per_node_second=per_node,
                currency=usage.currency if usage is not None else None,
            )
        )
    return out


EXPONENT_RANGE: Final = (-1.0, 2.0)
"""The scaling exponents an estimate uses: a data-parallel step gets about linearly faster with more nodes
(1), a little more with cache effects, or slower under communication; a fit outside this range comes from
noise between close node counts (e.g. 67 s at 44 nodes, 1 s at 45) and would extrapolate to absurd times."""


def scaling_exponent(measured: Sequence[Sample]) -> float | None:
    """The least-squares `b` of ``log t = a - b log n`` over `measured`; None below two node counts."""
    if len({s.nodes for s in measured}) < 2:
        return None
    xs = [math.log(s.nodes) for s in measured]
    ys = [math.log(s.step_seconds) for s in measured]
    mx, my = fmean(xs), fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return -slope


def steps_to_run(measured: Sequence[Sample], steps: int | None) -> int | None:
    """`steps`, else the total steps most of the measured jobs ran, else None."""
    if steps is not None:
        return steps
    known = [s.total_steps for s in measured if s.total_steps]
    return max(sorted(set(known)), key=known.count) if known else None


def estimate(measured: Sequence[Sample], nodes: Sequence[int], steps: int | None) -> list[Estimate]:
    """Duration and cost at each of `nodes` for `steps` steps (None: :func:`steps_to_run`)."""
    steps = steps_to_run(measured, steps)
    costs = [s.cost_per_node_second for s in measured if s.cost_per_node_second is not None]
    per_node = fmean(costs) if costs else None
    currency = next((s.currency for s in measured if s.currency), None)
    exponent = scaling_exponent(measured)
    out: list[Estimate] = []
    for n in nodes:
        if not measured:
            out.append(
                Estimate(n, None, None, None, "no data: no earlier attempt or finished job with this image")
            )
            continue
        if steps is None:
            out.append(Estimate(n, None, None, None, "no step count measured: give --steps"))
            continue
        at_n = [s.step_seconds for s in measured if s.nodes == n]
        if at_n:
            step_seconds = fmean(at_n)
            basis = f"measured at {n} node(s) ({len(at_n)} job(s))"
        elif exponent is not None:
            used = min(max(exponent, EXPONENT_RANGE[0]), EXPONENT_RANGE[1])
            anchors = [s.step_seconds * s.nodes**used for s in measured]
            step_seconds = fmean(anchors) * n**-used
            counts = len({s.nodes for s in measured})
            basis = f"fitted: step time ~ nodes^-{used:.2f} from {counts} node counts"
            if used != exponent:
                basis += f" (the fit gave {exponent:.2f}: noise between close node counts)"
        else:
            only = ", ".join(str(k) for k in sorted({s.nodes for s in measured}))
            out.append(Estimate(n, None, None, None, f"no data at {n} node(s): measured only at {only}"))
            continue
        seconds = steps * step_seconds
        cost = seconds * n * per_node if per_node is not None else None
        out.append(Estimate(n, seconds, cost, currency, basis))
    return out


def estimate_text(
    target: str,
    steps: int | None,
    measured: Sequence[Sample],
    rows: Sequence[Estimate],
    match: Match | None = None,
) -> str:
    """The `job estimate` report (`match`: what other jobs were matched on, said when none was)."""
    head = f"Estimate for {target}: {len(measured)} measured job(s)"
    exponent = scaling_exponent(measured)
    if exponent is not None:
        head += f"; measured scaling exponent {exponent:.2f} (1 = linear)"
    if not measured and match is not None:
        head += (
            f"\nNothing matches: no earlier attempt of {target} and no Succeeded job with "
            f"{match.describe()} has a measured step time"
        )
        if match.image is None:
            head += " (the job sets no image and its runtime gives none, so only its own attempts count)"
    table = format_table(
        ("nodes", "duration", "cost", "basis"),
        (
            (
                str(r.nodes),
                span(r.seconds) if r.seconds is not None else "-",
                f"{r.cost:.2f} {r.currency}" if r.cost is not None else "-",
                r.basis,
            )
            for r in rows
        ),
    )
    steps_line = (
        f"Steps: {steps}" if steps is not None else "Steps: unknown (no measured total; give --steps)"
    )
    return "\n".join([head, steps_line, table])
