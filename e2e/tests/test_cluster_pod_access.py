"""What pods reach on the host: the apiserver through the forwarder on the pod network's host address,
with TLS verified against that address and a ServiceAccount token as in-cluster credentials; every other
listener of the rig stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl
import subprocess

import httpx
import pytest

from e2e.cluster import Cluster
from e2e.cluster.forward import parse_address, start
from e2e.cluster.ports import HOST
from tests.required import missing

SERVICE_ACCOUNT = "default"


def test_parse_address_names_the_form() -> None:
    assert parse_address("10.150.0.1:6443") == ("10.150.0.1", 6443)
    for bad in ("10.150.0.1", ":80", "host:http", "host:0", "host:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


async def test_forwarder_relays_both_ways_and_passes_half_close() -> None:
    received: list[bytes] = []

    async def upper_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client half-closes
        received.append(data)
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    target = await asyncio.start_server(upper_echo, HOST, 0)
    target_port = target.sockets[0].getsockname()[1]
    server, forwarder = await start((HOST, 0), (HOST, target_port))
    port = server.sockets[0].getsockname()[1]
    async with target, server:
        for payload in (b"hello through the bridge", b"x" * 1_000_000):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(payload)
            writer.write_eof()
            assert await reader.read() == payload.upper()
            writer.close()
        assert received == [b"hello through the bridge", b"x" * 1_000_000]
    assert forwarder.connections == 2


async def test_forwarder_closes_the_client_when_the_target_is_down() -> None:
    with socket.socket() as s:
        s.bind((HOST, 0))
        dead_port = s.getsockname()[1]  # bound, never listening: connections are refused
        server, _ = await start((HOST, 0), (HOST, dead_port))
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection(HOST, port)
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()


def _require_pod_network(cluster: Cluster) -> str:
    if cluster.pod_host is None:
        missing(f"the rig has no pod network: {cluster.pod_network_unavailable}")
    return cluster.pod_host


def _token(cluster: Cluster, namespace: str) -> str:
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{SERVICE_ACCOUNT}/token"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    return str((cluster.api.create(path, body) or {})["status"]["token"])


def test_pods_reach_the_apiserver_at_the_host_address_with_in_cluster_credentials(
    cluster: Cluster, namespace: str
) -> None:
    pod_host = _require_pod_network(cluster)
    port = cluster.pod_apiserver_port
    assert port is not None
    # What client-go's in-cluster config does: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the
    # CA from the ServiceAccount volume, the projected token as bearer; the certificate must name the address.
    verify = ssl.create_default_context(cafile=str(cluster.ca_file))
    headers = {"Authorization": f"Bearer {_token(cluster, namespace)}"}
    with httpx.Client(base_url=f"https://{pod_host}:{port}", verify=verify, headers=headers) as http:
        review = http.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        review.raise_for_status()
        user = review.json()["status"]["userInfo"]
        assert user["username"] == f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
        assert http.get(f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt").status_code == 403
    # The root CA publisher gave the namespace the CA that pods verify the apiserver with.
    root_ca = cluster.api.get(f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt") or {}
    assert root_ca["data"]["ca.crt"] == cluster.ca_file.read_text()
    # The apiserver itself is not on the host address: only the forwarder is.
    apiserver_port = int(cluster.server.rsplit(":", 1)[1])
    with socket.socket() as s:
        s.settimeout(5)
        assert s.connect_ex((pod_host, apiserver_port)) == errno.ECONNREFUSED


USERS = re.compile(r'\("[^"]*",pid=(\d+),')


def test_every_listener_of_the_rig_is_on_loopback_or_the_pod_host(cluster: Cluster) -> None:
    allowed = {HOST, *([cluster.pod_host] if cluster.pod_host else [])}
    pids = {pid for name in cluster.component_names() if (pid := cluster.pid(name)) is not None}
    out = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, check=True, timeout=30).stdout
    seen: dict[str, set[str]] = {}
    for line in out.splitlines():
        fields = line.split()
        owners = {int(p) for p in USERS.findall(line)}
        if owners & pids:
            address = fields[4].rsplit(":", 1)[0].strip("[]")
            seen.setdefault(address, set()).add(fields[0])
    assert seen, f"no listener found for the rig's processes {pids}"
    assert set(seen) <= allowed, f"listeners off loopback and the pod host: {seen}"
    if cluster.pod_host is not None:
        assert seen[cluster.pod_host] == {"tcp", "udp"}, "DNS (UDP and TCP) and the apiserver forwarder"
