"""The trainer's shared memory: a memory-backed ``/dev/shm``, as PyTorch DataLoader workers need one.

A container runtime's default ``/dev/shm`` is 64 MiB, too small for DataLoader workers, which pass batches
between processes through it (and NCCL, which keeps its intra-node buffers there): they fail with "bus
error" or "No space left on device". So the operator mounts an ``emptyDir`` of medium Memory at ``/dev/shm``
of the trainer container by default. Its size limit is ``sizeLimit`` when set, else half the trainer's
memory limit: what Linux gives ``/dev/shm`` on a host (half of RAM), and memory the pod's own limit already
covers (tmpfs pages count against the container's memory). Without a memory limit no size limit is set
(the node's allocatable memory bounds it). ``enabled: false`` leaves ``/dev/shm`` to the runtime.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from pydantic import Field, StrictBool

from api.base import KubeModel
from api.quantity import Quantity, parse_quantity

DEFAULT_FRACTION: Final = Decimal(1) / 2
"""The share of the trainer's memory limit ``/dev/shm`` may use when no sizeLimit is set."""


class SharedMemory(KubeModel):
    """The trainer's memory-backed /dev/shm."""

    enabled: StrictBool = Field(
        default=True, description="Mount a memory-backed /dev/shm in the trainer (false: the runtime's own)."
    )
    size_limit: Quantity | None = Field(
        default=None,
        description="Size limit of /dev/shm, e.g. 16Gi. Default: half the trainer's memory limit (none "
        "without one). Its pages count against the pod's memory.",
    )


def shared_memory_size(shm: SharedMemory, memory_limit: int | str | None) -> int | str | None:
    """The emptyDir sizeLimit: `shm.sizeLimit`, else :data:`DEFAULT_FRACTION` of `memory_limit` in bytes
    (rounded down), else None."""
    if shm.size_limit is not None:
        return shm.size_limit
    if memory_limit is None:
        return None
    return int(parse_quantity(memory_limit) * DEFAULT_FRACTION)
