"""Process nodes run pods as real sandboxed processes, with the kubelet's observable behaviour.

Pods here are bound with `spec.nodeName` (no scheduler involved): what is under test is the node.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import textwrap
import time
from typing import Any

import pytest

from e2e.cluster import Cluster, WaitTimeoutError, wait_for
from e2e.cluster.process_nodes import ProcessNodePool

JSON = dict[str, Any]


@pytest.fixture
def node(process_nodes: ProcessNodePool) -> str:
    """One process node for the test."""
    (name,) = process_nodes(1, cpu="4", memory="8Gi", gpus=2)
    return name


def python_pod(name: str, node: str, script: str, **spec: Any) -> JSON:
    """A pod running `python -c script` (the project's virtualenv stands in for the image)."""
    container: JSON = {
        "name": "main",
        "image": "python:3.11",
        "command": ["python", "-u", "-c", textwrap.dedent(script)],
        **spec.pop("container", {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [container],
            **spec,
        },
    }


def create(cluster: Cluster, ns: str, pod: JSON) -> JSON:
    """Create a pod; return it."""
    out = cluster.api.create(f"/api/v1/namespaces/{ns}/pods", pod)
    assert out is not None
    return out


def get_pod(cluster: Cluster, ns: str, name: str) -> JSON | None:
    """The pod or None."""
    return cluster.api.get(f"/api/v1/namespaces/{ns}/pods/{name}")


def wait_phase(cluster: Cluster, ns: str, name: str, phases: tuple[str, ...], timeout: float = 60) -> JSON:
    """Wait until the pod is in one of `phases`."""

    last: list[JSON | None] = [None]

    def probe() -> JSON | None:
        pod = last[0] = get_pod(cluster, ns, name)
        return pod if pod and pod.get("status", {}).get("phase") in phases else None

    try:
        return wait_for(f"pod {name} in {phases}", probe, timeout)
    except WaitTimeoutError as exc:
        raise WaitTimeoutError(f"{exc}; last status: {(last[0] or {}).get('status')}") from None


def terminated(pod: JSON, container: str = "main") -> JSON:
    """The container's terminated state."""
    for cs in pod["status"]["containerStatuses"]:
        if cs["name"] == container:
            return cs["state"]["terminated"]
    raise AssertionError(f"no status for container {container}")


def test_node_registers_like_a_kubelet(cluster: Cluster, node: str) -> None:
    n = cluster.api.get(f"/api/v1/nodes/{node}")
    assert n is not None
    status = n["status"]
    assert status["capacity"]["nvidia.com/gpu"] == "2"
    assert status["capacity"]["cpu"] == "4"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert "kwok.x-k8s.io/node" not in n["metadata"].get("annotations", {})
    lease = cluster.api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == node


def test_pod_runs_exits_with_code_and_message(cluster: Cluster, namespace: str, node: str) -> None:
    script = """
        import socket, sys
        print("hello from", socket.gethostname())
        print("to stderr", file=sys.stderr)
        open("/dev/termination-log", "w").write("the end")
        sys.exit(3)
    """
    create(cluster, namespace, python_pod("exits", node, script, hostname="worker-0"))
    pod = wait_phase(cluster, namespace, "exits", ("Failed",))
    state = terminated(pod)
    assert state["exitCode"] == 3
    assert state["reason"] == "Error"
    assert state["message"] == "the end"
    assert pod["status"]["podIP"].startswith(cluster.ensure_pod_network().host_address.rsplit(".", 2)[0])
    logs = cluster.kubectl("logs", "-n", namespace, "exits").stdout
    assert "hello from worker-0" in logs
    assert "to stderr" in logs


def test_fallback_to_logs_on_error_and_success(cluster: Cluster, namespace: str, node: str) -> None:
    fail = python_pod(
        "fallback",
        node,
        "import sys; print('line one'); print('last words'); sys.exit(7)",
        container={"terminationMessagePolicy": "FallbackToLogsOnError"},
    )
    create(cluster, namespace, fail)
    create(cluster, namespace, python_pod("ok", node, "print('fine')"))
    state = terminated(wait_phase(cluster, namespace, "fallback", ("Failed",)))
    assert state["exitCode"] == 7
    assert state["message"].strip().endswith("last words")
    ok = wait_phase(cluster, namespace, "ok", ("Succeeded",))
    assert terminated(ok)["exitCode"] == 0
    assert terminated(ok)["reason"] == "Completed"


def test_graceful_delete_sigterm_then_final_delete(cluster: Cluster, namespace: str, node: str) -> None:
    script = """
        import signal, sys, time
        def bye(signum, frame):
            print("got SIGTERM", flush=True)
            time.sleep(0.5)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        while True:
            time.sleep(0.1)
    """
    create(cluster, namespace, python_pod("graceful", node, script, terminationGracePeriodSeconds=30))
    wait_phase(cluster, namespace, "graceful", ("Running",))
    wait_for("ready line", lambda: "ready" in cluster.kubectl("logs", "-n", namespace, "graceful").stdout, 20)
    t0 = time.monotonic()
    cluster.api.delete(f"/api/v1/namespaces/{namespace}/pods/graceful")
    wait_for("pod gone", lambda: get_pod(cluster, namespace, "graceful") is None, 30)
    elapsed = time.monotonic() - t0
    print(f"SIGTERM-to-gone for a 0.5 s drain: {elapsed:.2f} s")
    assert elapsed < 25, "the pod waited for its grace period: SIGTERM did not reach the main process"


def test_sigterm_ignored_means_sigkill_after_grace(cluster: Cluster, namespace: str, node: str) -> None:
    script = """
        import signal, time
        signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
        print("ready", flush=True)
        while True:
            time.sleep(0.1)
    """
    create(cluster, namespace, python_pod("stubborn", node, script, terminationGracePeriodSeconds=2))
    wait_phase(cluster, namespace, "stubborn", ("Running",))
    wait_for("ready line", lambda: "ready" in cluster.kubectl("logs", "-n", namespace, "stubborn").stdout, 20)
    pod = get_pod(cluster, namespace, "stubborn")
    assert pod is not None
    t0 = time.monotonic()
    cluster.api.delete(f"/api/v1/namespaces/{namespace}/pods/stubborn")
    seen: list[JSON] = []
    watcher = cluster.new_api()
    try:
        for event in watcher.watch(
            f"/api/v1/namespaces/{namespace}/pods", pod["metadata"]["resourceVersion"]
        ):
            obj = event.get("object") or {}
            if obj.get("metadata", {}).get("name") != "stubborn":
                continue
            seen.append(obj)
            if event["type"] == "DELETED":
                break
    finally:
        watcher.close()
    elapsed = time.monotonic() - t0
    assert elapsed >= 2.0
    finals = [p for p in seen if p["status"].get("phase") == "Failed"]
    assert finals, "no terminal status before the final delete"
    assert terminated(finals[-1])["exitCode"] == 137


def test_readiness_probe_and_pod_to_pod_traffic(cluster: Cluster, namespace: str, node: str) -> None:
    server = """
        import http.server, time
        time.sleep(1.5)
        http.server.HTTPServer(("0.0.0.0", 8080), http.server.SimpleHTTPRequestHandler).serve_forever()
    """
    probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    create(
        cluster,
        namespace,
        python_pod(
            "server", node, server, container={"readinessProbe": probe}, terminationGracePeriodSeconds=0
        ),
    )

    def ready() -> JSON | None:
        pod = get_pod(cluster, namespace, "server")
        conds = {c["type"]: c["status"] for c in (pod or {}).get("status", {}).get("conditions") or []}
        return pod if conds.get("Ready") == "True" and conds.get("ContainersReady") == "True" else None

    pod = wait_for("server Ready", ready, 30)
    ip = pod["status"]["podIP"]
    client = f"import urllib.request; print(urllib.request.urlopen('http://{ip}:8080/').status)"
    create(cluster, namespace, python_pod("client", node, client))
    wait_phase(cluster, namespace, "client", ("Succeeded",))
    assert cluster.kubectl("logs", "-n", namespace, "client").stdout.strip() == "200"


def test_volumes_env_and_files(cluster: Cluster, namespace: str, process_nodes: ProcessNodePool) -> None:
    (node,) = process_nodes(1)
    api = cluster.api
    api.create(
        f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "cm"}, "data": {"k": "cmv"}}
    )
    secret = {"metadata": {"name": "sec"}, "data": {"s": base64.b64encode(b"secret-v").decode()}}
    api.create(f"/api/v1/namespaces/{namespace}/secrets", secret)
    api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "trainer"}})
    script = """
        import json, os, socket
        out = {
            "hostname": socket.gethostname(),
            "env": {k: os.environ.get(k) for k in os.environ["CHECK"].split()},
            "cm": open("/etc/cm/k").read(),
            "labels": open("/etc/podinfo/labels").read(),
            "shm": os.statvfs("/dev/shm").f_blocks * os.statvfs("/dev/shm").f_frsize,
            "resolv": open("/etc/resolv.conf").read(),
            "hosts": open("/etc/hosts").read(),
            "token": open("/var/run/secrets/tokens/t").read(),
            "claim_before": sorted(os.listdir("/data")),
        }
        open("/data/" + os.environ["POD"], "w").write("x")
        print(json.dumps(out))
    """
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "CMV", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        {"name": "SECV", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "s"}}},
        {"name": "EXPANDED", "value": "$(POD)-$(NS)"},
        {"name": "CHECK", "value": "POD NS IP CPU CMV SECV FROM_k EXPANDED"},
    ]
    volumes = [
        {"name": "cm", "configMap": {"name": "cm"}},
        {
            "name": "info",
            "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
        },
        {"name": "shm", "emptyDir": {"medium": "Memory"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "ckpt"}},
        {
            "name": "tok",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "pyroclast.dev/test",
                            "path": "t",
                            "expirationSeconds": 600,
                        }
                    }
                ]
            },
        },
    ]
    mounts = [
        {"name": "cm", "mountPath": "/etc/cm"},
        {"name": "info", "mountPath": "/etc/podinfo"},
        {"name": "shm", "mountPath": "/dev/shm"},
        {"name": "data", "mountPath": "/data"},
        {"name": "tok", "mountPath": "/var/run/secrets/tokens"},
    ]
    results = []
    for name in ("first", "second"):
        pod = python_pod(
            name,
            node,
            script,
            hostname="w0",
            subdomain="workers",
            serviceAccountName="trainer",
            volumes=volumes,
            container={
                "env": env,
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "FROM_"}],
                "volumeMounts": mounts,
                "resources": {"limits": {"cpu": "1500m"}},
            },
        )
        pod["metadata"]["labels"] = {"app": "probe"}
        create(cluster, namespace, pod)
        done = wait_phase(cluster, namespace, name, ("Succeeded", "Failed"))
        logs = cluster.kubectl("logs", "-n", namespace, name).stdout
        assert done["status"]["phase"] == "Succeeded", logs
        results.append((done, json.loads(logs.strip().splitlines()[-1])))
    (pod1, out1), (_, out2) = results
    ip = pod1["status"]["podIP"]
    assert out1["hostname"] == "w0"
    assert out1["env"] == {
        "POD": "first",
        "NS": namespace,
        "IP": ip,
        "CPU": "2",
        "CMV": "cmv",
        "SECV": "secret-v",
        "FROM_k": "cmv",
        "EXPANDED": f"first-{namespace}",
    }
    assert out1["cm"] == "cmv"
    assert out1["labels"] == 'app="probe"'
    assert out1["shm"] > 64 * 1024 * 1024, "the Memory emptyDir is not what /dev/shm shows"
    net = cluster.ensure_pod_network()
    assert f"nameserver {net.host_address}" in out1["resolv"]
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in out1["resolv"]
    assert "options ndots:5" in out1["resolv"]
    assert f"{ip}\tw0.workers.{namespace}.svc.cluster.local\tw0" in out1["hosts"]
    assert out1["claim_before"] == []
    assert out2["claim_before"] == ["first"], "the claim's directory did not outlive the pod"
    review: JSON = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    review["spec"] = {"token": out1["token"], "audiences": ["pyroclast.dev/test"]}
    answer = cluster.api.create("/apis/authentication.k8s.io/v1/tokenreviews", review)
    assert answer is not None
    status = answer["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{namespace}:trainer"
    assert status["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["first"]


def test_logs_follow_and_previous(cluster: Cluster, namespace: str, node: str) -> None:
    script = """
        import os, sys, time
        marker = "/data/started"
        first = not os.path.exists(marker)
        open(marker, "a").close()
        for i in range(3):
            print(f"{'first' if first else 'second'} run line {i}", flush=True)
            time.sleep(0.3)
        sys.exit(1 if first else 0)
    """
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": f"logs-{secrets.token_hex(2)}"}}]
    pod = python_pod(
        "restarts",
        node,
        script,
        restartPolicy="OnFailure",
        volumes=volumes,
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
    )
    create(cluster, namespace, pod)
    wait_phase(cluster, namespace, "restarts", ("Running", "Succeeded"))
    follow = subprocess.run(
        [
            str(cluster.kubectl_binary),
            f"--kubeconfig={cluster.kubeconfig}",
            "logs",
            "-f",
            "-n",
            namespace,
            "restarts",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "line 2" in follow.stdout, follow.stderr
    done = wait_phase(cluster, namespace, "restarts", ("Succeeded",))
    assert done["status"]["containerStatuses"][0]["restartCount"] == 1
    assert done["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    previous = cluster.kubectl("logs", "--previous", "-n", namespace, "restarts").stdout
    assert previous.splitlines() == [f"first run line {i}" for i in range(3)]
    current = cluster.kubectl("logs", "-n", namespace, "restarts", "--tail=1").stdout
    assert current.strip() == "second run line 2"
