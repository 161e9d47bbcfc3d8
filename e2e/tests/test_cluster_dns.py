"""Cluster DNS: the rig's CoreDNS answers the names the operator gives workers, as torch dials them.

A worker's `PET_LOCAL_ADDR` and a fixed gang's `PET_RDZV_ENDPOINT` are `<pod>.pyroclast-workers.<ns>.svc`:
three dots, so a pod's resolver (ndots 5) walks its search list and the last entry, `cluster.local`, finds the
record of the pod behind the headless Service. The tests ask CoreDNS the way a pod's resolver does (dnspython
with the pod's search list on the loopback listener) and, where the rig has a pod network, through glibc's
getaddrinfo (what torch's TCPStore calls) with a pod's resolv.conf naming the pod network's host address.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.resolver
import dns.reversename
import pytest

from api import contract
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.service import WORKERS_SERVICE
from e2e.cluster import Cluster, wait_for
from e2e.cluster import dns as cluster_dns
from e2e.cluster.pool import NodePool
from e2e.torchjobs import operator, torchjob, wait_phase
from tests.required import missing

FORWARDING_PLUGINS = ("forward", "proxy", "grpc")


def test_corefile_serves_only_the_cluster_zone_and_never_forwards() -> None:
    text = cluster_dns.corefile(
        [cluster_dns.Listener("127.0.0.1", 1053), cluster_dns.Listener("10.150.0.1", 53)],
        "/tmp/k.kubeconfig",
        health=cluster_dns.Listener("127.0.0.1", 2000),
        ready=cluster_dns.Listener("127.0.0.1", 2001),
    )
    words = [line.split()[0] for line in text.splitlines() if line.strip()]
    assert not set(FORWARDING_PLUGINS) & set(words)
    assert [w for w in words if w.endswith("{") or w.startswith("cluster.local:")] == [
        "cluster.local:1053",
        "cluster.local:53",
    ]
    assert words.count("kubernetes") == 2, "each server block answers from the apiserver"
    assert "cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {" in text, "and serves reverse lookups"
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in text
    assert words.count("health") == words.count("ready") == 1, "process-wide probes, in one block only"
    assert "kubeconfig /tmp/k.kubeconfig" in text
    with pytest.raises(ValueError, match="at least one listener"):
        cluster_dns.corefile([], "k", health=cluster_dns.Listener("h", 1), ready=cluster_dns.Listener("h", 2))


def test_resolv_conf_is_the_kubelets() -> None:
    assert cluster_dns.resolv_conf("10.150.0.1", "team-a") == (
        "search team-a.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.150.0.1\n"
        "options ndots:5\n"
    )


def _pod_resolver(cluster: Cluster, namespace: str) -> dns.resolver.Resolver:
    """A resolver configured as a pod's (search list, ndots 5), asking the rig's CoreDNS on loopback."""
    host, port = cluster.dns_address
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.search = [dns.name.from_text(d) for d in cluster_dns.search_domains(namespace)]
    resolver.ndots = 5
    resolver.lifetime = 5
    return resolver


def _addresses(resolver: dns.resolver.Resolver, name: str) -> set[str]:
    try:
        answer = resolver.resolve(name, "A", search=True)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return set()
    return {record.address for record in answer}


def _rcode(cluster: Cluster, name: str) -> int:
    host, port = cluster.dns_address
    query = dns.message.make_query(name, "A")
    return dns.query.udp(query, host, port=port, timeout=5).rcode()


def _env(pod: JsonObject) -> dict[str, str]:
    [trainer] = [c for c in pod["spec"]["containers"] if c["name"] == "trainer"]
    return {e["name"]: e["value"] for e in trainer["env"] if "value" in e}


async def _running_gang(cluster: Cluster, namespace: str, nodes: NodePool) -> list[JsonObject]:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        await client.create(TORCHJOBS, torchjob("dns", nodes), namespace)
        await wait_phase(client, namespace, "dns", "Running")
        pods = (await client.list(PODS, namespace)).items
    assert len(pods) == 2
    assert all(p["status"].get("podIP") for p in pods)
    return pods


async def test_worker_names_resolve_through_the_search_list_as_torch_dials_them(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    pods = await _running_gang(cluster, namespace, nodes)
    resolver = _pod_resolver(cluster, namespace)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    # The Service's own name lists every worker (publishNotReadyAddresses: before readiness too); once it
    # does, CoreDNS has seen the EndpointSlice that carries every worker's hostname.
    service = f"{WORKERS_SERVICE}.{namespace}.svc"
    wait_for(f"{service} -> every worker", lambda: _addresses(resolver, service) == set(ips.values()), 30)
    [host_pod] = [p for p in pods if p["metadata"]["name"].endswith("-0")]
    for pod in pods:
        env = _env(pod)
        local = env[contract.PET_LOCAL_ADDR]
        endpoint_host = env[contract.PET_RDZV_ENDPOINT].rsplit(":", 1)[0]
        assert local == f"{pod['metadata']['name']}.{WORKERS_SERVICE}.{namespace}.svc"
        assert _addresses(resolver, local) == {pod["status"]["podIP"]}
        assert _addresses(resolver, endpoint_host) == {host_pod["status"]["podIP"]}
        fqdn = cluster_dns.pod_fqdn(pod["spec"]["hostname"], pod["spec"]["subdomain"], namespace)
        assert _addresses(resolver, fqdn + ".") == {pod["status"]["podIP"]}
        # c10d asks for the name of every peer it accepts: the reverse record names the worker.
        ptr = resolver.resolve(dns.reversename.from_address(pod["status"]["podIP"]), "PTR")
        assert {str(record.target) for record in ptr} == {fqdn + "."}
    # Inside the zone a missing name is NXDOMAIN; outside it nothing is forwarded: CoreDNS refuses.
    assert _rcode(cluster, f"nobody.{WORKERS_SERVICE}.{namespace}.svc.cluster.local.") == dns.rcode.NXDOMAIN
    assert _rcode(cluster, "pytorch.org.") == dns.rcode.REFUSED


GETADDRINFO = """
import json, socket, sys
out = {}
for name in sys.argv[1:]:
    try:
        found = socket.getaddrinfo(name, 29400, socket.AF_INET, socket.SOCK_STREAM)
        out[name] = sorted({a[4][0] for a in found})
    except socket.gaierror as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def _getaddrinfo_in_pod_mount_namespace(resolv_conf: Path, names: list[str]) -> dict[str, Any]:
    """glibc's getaddrinfo in a private mount namespace whose /etc/resolv.conf is a pod's."""
    argv = [
        "unshare",
        "--mount",
        "--propagation=private",
        "--",
        "sh",
        "-c",
        'mount --bind "$0" /etc/resolv.conf && exec "$@"',
        str(resolv_conf),
        sys.executable,
        "-c",
        GETADDRINFO,
        *names,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


async def test_getaddrinfo_with_a_pods_resolv_conf_finds_the_workers(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, tmp_path: Path
) -> None:
    if cluster.pod_host is None:
        missing(f"the rig has no pod network: {cluster.pod_network_unavailable}")
    pods = await _running_gang(cluster, namespace, nodes)
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(cluster_dns.resolv_conf(cluster.pod_host, namespace))
    wanted = {_env(p)[contract.PET_LOCAL_ADDR]: [p["status"]["podIP"]] for p in pods}
    names = [*wanted, "pytorch.org"]

    def resolved() -> dict[str, Any] | None:
        got = _getaddrinfo_in_pod_mount_namespace(resolv_conf, names)
        return got if all(got[n] == ips for n, ips in wanted.items()) else None

    got = wait_for("worker names through getaddrinfo", resolved, 30, interval=1)
    assert isinstance(got["pytorch.org"], str), "no name outside the cluster resolves: nothing is forwarded"
