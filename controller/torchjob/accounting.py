"""What a status write carries beyond the plan: the job's usage with its cost, and its goodput (pure).

Both change with every second a gang holds its nodes, so neither ever causes a write: the reconciler leaves
them out when it decides whether the status changed (:data:`FIELDS`) and sends them along when it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from api import TorchJob, TorchJobStatus
from controller.torchjob.goodput import goodput
from controller.torchjob.plan import attempt_of
from controller.torchjob.rates import Rates
from controller.torchjob.usage import usage

FIELDS: Final = frozenset({"usage", "goodput"})
"""Status fields (as written) that ride along with a write and never cause one."""


def account(
    job: TorchJob,
    old: TorchJobStatus,
    new: TorchJobStatus,
    pods: Sequence[dict[str, Any]],
    now: datetime,
    rates: Rates | None = None,
) -> TorchJobStatus:
    """`new` (the plan's status) with its usage and goodput at `now`, from `old` (the status last written) and
    the job's pods; `new` itself is left as the plan made it.

    A copy rather than an input of the plan: what a pass costs depends on the plan's outcome (the attempt,
    the phase the gang moves to) and never decides anything, so the plan stays a function of the cluster
    alone (its tests compare statuses without usage) and the reconciler adds this to what it writes. The
    copy is shallow (cheap at thousands of jobs): the reconciler replaces the status's fields after it, never
    edits them in place.
    """
    if old.phase is not None and old.phase.finished and old.usage is not None:
        used = old.usage  # the final write counted the pods to their ends
    else:
        used = usage(job, old.usage, attempt_of(new), pods, now, rates)
    return new.model_copy(update={"usage": used, "goodput": goodput(old, new, now)})
