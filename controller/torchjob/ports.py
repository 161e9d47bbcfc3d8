"""Host ports of host-network jobs: chosen per job so two jobs' workers on one node never collide (pure).

With ``hostNetwork: true`` (RDMA/InfiniBand fabrics) every worker listens in its node's network namespace, so
two jobs whose workers share a node must not both use ``spec.rendezvous.port``. The operator therefore
allocates each fixed-size host-network job its own port, before the first worker exists:

- the candidate is derived from the job's UID (a hash into :data:`~api.ports.HOST_PORT_BASE` +
  :data:`~api.ports.HOST_PORT_COUNT`), so jobs created at the same time rarely even probe the same port;
- it is checked against the ports every other unfinished job recorded in ``status.ports``, and the next free
  one taken on a clash;
- it is written to ``status.ports`` (with the resourceVersion it was chosen from) before any pod is created,
  and from then on read from there: restarts, reconciles and operator restarts reuse it, whatever other jobs
  came and went meanwhile.

worker 0 hosts the c10d store on that port, and torchrun shares the store with the trainers, so it is the
master port (``MASTER_PORT``) too. The worker declares it as a container port, which with host networking is
a host port: Volcano's node-ports predicate then also keeps two workers that would clash off one node.

An elastic job needs no host port: its store runs in its own pod on the pod network, and its trainers'
store (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE``) is bound by torchrun to a port the kernel picks free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from api import TorchJob
from api.ports import HOST_PORT_BASE, HOST_PORT_COUNT, JobPorts
from controller.runtime.objects import JsonObject


def host_network(job: TorchJob) -> bool:
    """Whether the job's template asks for the node's network."""
    template = job.spec.template
    return bool(template and template.spec and template.spec.host_network)


def needs_host_ports(job: TorchJob) -> bool:
    """A fixed-size host-network job that has no ports recorded yet."""
    status = job.status
    recorded = status is not None and status.ports is not None
    return host_network(job) and not job.spec.nodes.elastic and not recorded


def rendezvous_port(job: TorchJob) -> int:
    """The port worker 0 hosts the store on: the allocated one, else ``spec.rendezvous.port``."""
    status = job.status
    if host_network(job) and status is not None and status.ports is not None:
        return status.ports.rendezvous
    return job.spec.rendezvous.port


def taken_ports(jobs: Iterable[JsonObject], uid: str) -> set[int]:
    """Ports other unfinished jobs recorded in their status (raw objects, as the cache holds them)."""
    taken: set[int] = set()
    for obj in jobs:
        meta: JsonObject = obj.get("metadata") or {}
        if meta.get("uid") == uid:
            continue
        status: JsonObject = obj.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        ports: JsonObject = status.get("ports") or {}
        taken.update(p for p in (ports.get("rendezvous"), ports.get("master")) if isinstance(p, int))
    return taken


def allocate(uid: str, taken: set[int]) -> JobPorts:
    """The first port free of `taken` from the UID's own starting point; raises when the range is full."""
    start = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") % HOST_PORT_COUNT
    for step in range(HOST_PORT_COUNT):
        port = HOST_PORT_BASE + (start + step) % HOST_PORT_COUNT
        if port not in taken:
            return JobPorts(rendezvous=port, master=port)
    raise RuntimeError(f"all {HOST_PORT_COUNT} host ports from {HOST_PORT_BASE} are taken by running jobs")
