"""RuntimeRef: how a TorchJob names the runtime it takes its defaults from (see :mod:`api.runtime`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.base import KubeModel
from api.fields import DnsSubdomain


class RuntimeRef(KubeModel):
    """The runtime a TorchJob takes its defaults from."""

    kind: Literal["ClusterTorchRuntime", "TorchRuntime"] = Field(
        default="ClusterTorchRuntime",
        description="ClusterTorchRuntime (cluster-wide) or TorchRuntime (in the job's namespace).",
    )
    name: DnsSubdomain = Field(description="Name of the runtime.")
