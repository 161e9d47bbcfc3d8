"""The ports a host-network job's workers listen on, as the operator allocated them (``status.ports``)."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, StrictInt

from api.base import KubeModel

HOST_PORT_BASE: Final = 20000
HOST_PORT_COUNT: Final = 10000
"""Host ports are allocated from 20000-29999: below the NodePort range (30000-32767) and Linux's default
ephemeral range (32768-60999), so neither a Service nor an outgoing connection holds one."""

Port = Annotated[StrictInt, Field(ge=1, le=65535)]


class JobPorts(KubeModel):
    """The job's ports on its workers' nodes, chosen once (before the first worker exists) and kept."""

    rendezvous: Port = Field(description="The c10d rendezvous store's port (worker 0 hosts it).")
    master: Port | None = Field(
        default=None,
        description="The trainers' store (MASTER_PORT): torchrun shares the rendezvous store, so the same "
        "port.",
    )
