"""Cluster DNS: CoreDNS with its `kubernetes` plugin, as a cluster's `kube-dns` Service would run it.

CoreDNS answers for `cluster.local` from the apiserver: Service names, and the
`<hostname>.<subdomain>.<namespace>.svc.cluster.local` records of pods behind a headless Service, which is how
torch's TCPStore finds the rendezvous host. It is built with no forwarding plugin (e2e/go/coredns), so a name
outside the zone is refused and no query ever leaves the machine.

PTR records for pod and Service addresses come from `in-addr.arpa` and `ip6.arpa`. Two listeners, each a
server block with its own `kubernetes` plugin: the pod network's host address on port 53
(pods' `/etc/resolv.conf` names it; it exists only when the rig has a pod network), and 127.0.0.1 on a free
port for the host side (tests). `health` and `ready` serve the rig's probes on loopback; `ready` answers 200
once the plugin's informers have synced.

CoreDNS reads the API as `system:coredns`, a client-certificate user bound to the ClusterRole a kubeadm
cluster gives its CoreDNS ServiceAccount (`CLUSTER_ROLE`), not as an administrator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ZONE = "cluster.local"
# Reverse lookups of pod and Service addresses as well, as in kubeadm's Corefile: torch's c10d asks for the
# name of every peer it accepts.
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
USER = "system:coredns"
TTL_SECONDS = 5  # the plugin's default; a restarted pod's new address shows within it

CLUSTER_ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": USER},
    "rules": [
        {
            "apiGroups": [""],
            "resources": ["endpoints", "services", "pods", "namespaces"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    ],
}
CLUSTER_ROLE_BINDING: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": USER},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
}


@dataclass(frozen=True)
class Listener:
    """One address CoreDNS answers on (UDP and TCP)."""

    host: str
    port: int


def server_block(listener: Listener, kubeconfig: str, extra: Sequence[str] = ()) -> str:
    """One server block: the cluster zone (and reverse zones) on one address, answered by the `kubernetes`
    plugin."""
    zones = (ZONE, *REVERSE_ZONES)
    lines = [
        " ".join(f"{zone}:{listener.port}" for zone in zones) + " {",
        f"    bind {listener.host}",
        *(f"    {line}" for line in extra),
        "    errors",
        "    log",
        f"    kubernetes {' '.join(zones)} {{",
        f"        kubeconfig {kubeconfig}",
        "        pods insecure",
        f"        ttl {TTL_SECONDS}",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def corefile(listeners: Sequence[Listener], kubeconfig: str, *, health: Listener, ready: Listener) -> str:
    """The Corefile: one block per listener; the first also serves `health` and `ready` (process-wide)."""
    if not listeners:
        raise ValueError("CoreDNS needs at least one listener")
    probes = (f"health {health.host}:{health.port}", f"ready {ready.host}:{ready.port}")
    first, *rest = listeners
    blocks = [server_block(first, kubeconfig, probes), *(server_block(lst, kubeconfig) for lst in rest)]
    return "\n".join(blocks)


def service_fqdn(service: str, namespace: str) -> str:
    """`<service>.<namespace>.svc.cluster.local`."""
    return f"{service}.{namespace}.svc.{ZONE}"


def pod_fqdn(hostname: str, subdomain: str, namespace: str) -> str:
    """The record of a pod with `hostname` and `subdomain` behind the headless Service named `subdomain`."""
    return f"{hostname}.{service_fqdn(subdomain, namespace)}"


def search_domains(namespace: str) -> list[str]:
    """A pod's resolv.conf search list, as the kubelet writes it (ClusterFirst policy)."""
    return [f"{namespace}.svc.{ZONE}", f"svc.{ZONE}", ZONE]


def resolv_conf(nameserver: str, namespace: str) -> str:
    """`/etc/resolv.conf` of a pod with dnsPolicy ClusterFirst."""
    return f"search {' '.join(search_domains(namespace))}\nnameserver {nameserver}\noptions ndots:5\n"
