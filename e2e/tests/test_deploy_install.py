"""deploy/ on the real apiserver: `kubectl apply -k` and `helm template` output install, and the operator,
run as the shipped ServiceAccount with only the shipped RBAC, runs jobs and is refused everything else.

The Deployment's pod template also goes through the apiserver's admission as a dry-run pod, so restricted
Pod Security is checked on exactly that template. The operator itself runs here as a `pyroclast run` process
with a TokenRequest token for the ServiceAccount and the cluster CA, the credentials a pod gets in-cluster;
the Deployment's own replicas run on process nodes in test_deploy_in_cluster.py."""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import yaml

from controller.runtime.client import Client
from controller.runtime.errors import Forbidden
from controller.runtime.health import probes_app
from controller.runtime.httpserver import HttpServer
from controller.runtime.objects import JsonObject
from controller.runtime.resource import LEASES, PODS, SECRETS, Resource
from controller.torchjob.kinds import PODGROUPS, TORCHJOBS
from controller.torchjob.rates import load_rates
from e2e.cluster import Cluster
from e2e.cluster.api import ApiError
from e2e.cluster.operator import install_crd
from e2e.cluster.pool import NodePool
from e2e.cluster.ports import HOST, free_port
from e2e.helm import CHART, helm_binary, helm_template
from e2e.torchjobs import condition, status_of, stop_process, torchjob, wait_for, wait_phase
from pyroclast.cli import build_parser
from pyroclast.operator import LEADER_LABEL, manager_options, progress_options

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEM_NS = "pyroclast-system"
SERVICE_ACCOUNT = "pyroclast-operator"
LEASE = "pyroclast-operator"
USERNAME = f"system:serviceaccount:{SYSTEM_NS}:{SERVICE_ACCOUNT}"
SELF_SUBJECT_REVIEWS = Resource(
    "authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", namespaced=False
)
RBAC_API = "/apis/rbac.authorization.k8s.io/v1"


# --- rendering and installing -------------------------------------------------------------------------------


def _documents(text: str) -> list[JsonObject]:
    return [d for d in yaml.safe_load_all(text) if d]


def _kustomize(cluster: Cluster, path: Path) -> list[JsonObject]:
    return _documents(cluster.kubectl("kustomize", str(path)).stdout)


def _without_crd(docs: list[JsonObject]) -> str:
    """The documents minus the CRD, which other tests of the session keep using."""
    return yaml.safe_dump_all([d for d in docs if d["kind"] != "CustomResourceDefinition"])


def _uninstall(cluster: Cluster, docs: list[JsonObject]) -> None:
    cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=_without_crd(docs))


def _one(docs: list[JsonObject], kind: str, name: str | None = None) -> JsonObject:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _admitted_pod(cluster: Cluster, namespace: str, name: str, node: str | None = None) -> JsonObject:
    """A pod from the stored Deployment's template, through the whole admission chain (Pod Security
    ``restricted`` included) but not stored; with ``node``, it is stored, bound to that (kwok) node, as the
    ReplicaSet controller and the scheduler would bind it."""
    deploy = cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}") or {}
    assert deploy["spec"]["replicas"] == 2
    template = deploy["spec"]["template"]
    pod = {"metadata": {**template["metadata"], "generateName": f"{name}-"}, "spec": template["spec"]}
    path = f"/api/v1/namespaces/{namespace}/pods"
    if node is not None:
        pod["spec"] = {**pod["spec"], "nodeName": node}
        return cluster.api.request("POST", path, body=pod).json()
    return cluster.api.request("POST", path, body=pod, params={"dryRun": "All"}).json()


def _assert_hardened(pod: JsonObject) -> None:
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {p["httpGet"]["path"] for p in (container["livenessProbe"], container["readinessProbe"])} == {
        "/healthz",
        "/readyz",
    }
    assert container["resources"]["requests"]["memory"]
    assert "--leader-elect" in container["args"]


def _rules(role: JsonObject) -> list[JsonObject]:
    return sorted((r for r in role["rules"]), key=json.dumps)


@pytest.fixture(scope="module")
def base_install(cluster: Cluster, crd: str) -> Iterator[list[JsonObject]]:
    """`kubectl apply -k deploy/base`; everything but the CRD is deleted afterwards."""
    docs = _kustomize(cluster, DEPLOY / "base")
    applied = cluster.kubectl("apply", "-k", str(DEPLOY / "base"))
    assert "PodSecurity" not in applied.stderr, applied.stderr  # "would violate PodSecurity" warnings
    install_crd(
        cluster
    )  # the session's CRD is the one generated now, even while deploy/crd is being regenerated
    try:
        yield docs
    finally:
        _uninstall(cluster, docs)


def test_kustomize_base_installs_a_hardened_two_replica_operator(
    cluster: Cluster, base_install: list[JsonObject]
) -> None:
    kinds = {d["kind"] for d in base_install}
    assert {
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    } <= kinds
    assert {"Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget"} <= kinds
    ns = cluster.api.get(f"/api/v1/namespaces/{SYSTEM_NS}") or {}
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = _admitted_pod(cluster, SYSTEM_NS, "pyroclast-operator")
    _assert_hardened(pod)
    # The check has teeth: the same pod without its security context is refused.
    bare = {"metadata": {"generateName": "bare-"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    with pytest.raises(ApiError) as refused:
        cluster.api.request(
            "POST", f"/api/v1/namespaces/{SYSTEM_NS}/pods", body=bare, params={"dryRun": "All"}
        )
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body
    assert pod["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    service = cluster.api.get(f"/api/v1/namespaces/{SYSTEM_NS}/services/pyroclast-operator-metrics") or {}
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert pod["metadata"]["labels"].items() >= service["spec"]["selector"].items()


def test_production_overlay_renders_and_the_server_accepts_it(
    cluster: Cluster, base_install: list[JsonObject]
) -> None:
    docs = _kustomize(cluster, DEPLOY / "overlays" / "production")
    monitor = _one(docs, "ServiceMonitor")
    service = _one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    container = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--workers=16" in container["args"]
    assert container["image"] == "ghcr.io/pyroclast/pyroclast-operator:0.1.0"
    # The ServiceMonitor needs prometheus-operator's CRD, which the rig does not have; the rest is validated
    # by the apiserver (schema, admission) without being stored.
    rest = [d for d in docs if d["kind"] != "ServiceMonitor"]
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(rest))


def test_example_queues_and_priority_classes_are_accepted(cluster: Cluster, crd: str) -> None:
    for example in ("queues.yaml", "priorityclasses.yaml"):
        out = cluster.kubectl("apply", "--dry-run=server", "-f", str(DEPLOY / "examples" / example))
        assert "(server dry run)" in out.stdout


# --- Helm ---------------------------------------------------------------------------------------------------


def test_helm_chart_installs_with_the_same_rbac_as_kustomize(
    cluster: Cluster, base_install: list[JsonObject]
) -> None:
    release, namespace = f"pyro-{secrets.token_hex(3)}", f"helm-{secrets.token_hex(3)}"
    values = ("concurrency=6", "kubeApi.qps=30", "logLevel=debug", "otlp.endpoint=http://collector:4318")
    docs = helm_template(release, namespace, *values)
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    cluster.create_namespace(namespace, labels=labels)
    try:
        applied = cluster.kubectl("apply", "-f", "-", input=_without_crd(docs))
        assert "PodSecurity" not in applied.stderr, applied.stderr
        pod = _admitted_pod(cluster, namespace, f"{release}-pyroclast")
        _assert_hardened(pod)
        args = pod["spec"]["containers"][0]["args"]
        for flag in (
            "--workers=6",
            "--kube-api-qps=30",
            "--log-level=debug",
            "--otlp-endpoint=http://collector:4318",
        ):
            assert flag in args
        helm_role = cluster.api.get(f"{RBAC_API}/clusterroles/{release}-pyroclast") or {}
        kustomize_role = cluster.api.get(f"{RBAC_API}/clusterroles/pyroclast-operator") or {}
        assert _rules(helm_role) == _rules(kustomize_role)
        lease_role = f"{RBAC_API}/namespaces/{namespace}/roles/{release}-pyroclast-leader-election"
        base_lease_role = f"{RBAC_API}/namespaces/{SYSTEM_NS}/roles/pyroclast-leader-election"
        assert _rules(cluster.api.get(lease_role) or {}) == _rules(cluster.api.get(base_lease_role) or {})
    finally:
        _uninstall(cluster, docs)
        cluster.api.delete(f"/api/v1/namespaces/{namespace}")


def test_helm_values_schema_refuses_bad_input() -> None:
    argv = [helm_binary(), "template", "bad", str(CHART), "--set", "concurrency=0", "--set", "logFormat=xml"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "concurrency" in out.stderr
    assert "logFormat" in out.stderr


# --- the operator as the ServiceAccount ---------------------------------------------------------------------


def _token(cluster: Cluster, namespace: str = SYSTEM_NS, account: str = SERVICE_ACCOUNT) -> str:
    """A one-hour token for a ServiceAccount (TokenRequest, as the kubelet mints pod tokens)."""
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    answer = cluster.api.create(path, body) or {}
    return str(answer["status"]["token"])


def _in_cluster_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    """What a pod has in-cluster: the apiserver, its CA and the ServiceAccount's token, nothing else."""
    server = {"server": cluster.server, "certificate-authority": str(cluster.ca_file)}
    context = {"cluster": "in-cluster", "user": SERVICE_ACCOUNT, "namespace": SYSTEM_NS}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": server}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "in-cluster", "context": context}],
        "current-context": "in-cluster",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def sa_token(cluster: Cluster, base_install: list[JsonObject]) -> str:
    return _token(cluster)


def _as_service_account(cluster: Cluster, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.server,
        verify=ssl.create_default_context(cafile=str(cluster.ca_file)),
        headers={"Authorization": f"Bearer {token}"},
    )


# (verb, group, resource, subresource, namespace, name): what the operator does, so what it must be allowed.
NEEDED = [
    ("list", "pyroclast.dev", "torchjobs", "", "", ""),
    ("watch", "pyroclast.dev", "torchjobs", "", "", ""),
    ("patch", "pyroclast.dev", "torchjobs", "status", "team-a", "job"),
    ("delete", "pyroclast.dev", "torchjobs", "", "team-a", "job"),
    ("create", "scheduling.volcano.sh", "podgroups", "", "team-a", ""),
    ("patch", "scheduling.volcano.sh", "podgroups", "", "team-a", "pg"),
    ("watch", "", "pods", "", "", ""),
    ("create", "", "pods", "", "team-a", ""),
    ("delete", "", "services", "", "team-a", "svc"),
    ("create", "", "events", "", "team-a", ""),
    ("create", "authentication.k8s.io", "tokenreviews", "", "", ""),
    ("get", "scheduling.volcano.sh", "queues", "", "", "research"),
    ("update", "coordination.k8s.io", "leases", "", SYSTEM_NS, LEASE),
    ("patch", "", "pods", "", SYSTEM_NS, "pyroclast-operator-7d9f-abcde"),  # the leader labels its own pod
]
# What it must not do: read secrets or config, reach into pods or nodes, edit what users own, act elsewhere.
DENIED = [
    ("get", "", "secrets", "", "team-a", ""),
    ("list", "", "secrets", "", "", ""),
    ("list", "", "configmaps", "", "team-a", ""),
    ("create", "", "pods", "exec", "team-a", "p"),
    ("get", "", "pods", "log", "team-a", "p"),
    ("update", "", "pods", "", "team-a", "p"),
    ("patch", "", "pods", "", "team-a", "p"),
    ("list", "", "nodes", "", "", ""),
    ("create", "pyroclast.dev", "torchjobs", "", "team-a", ""),
    ("update", "pyroclast.dev", "torchjobs", "", "team-a", "job"),
    ("create", "", "serviceaccounts", "token", SYSTEM_NS, SERVICE_ACCOUNT),
    ("create", "", "serviceaccounts", "token", "team-a", "default"),
    ("create", "authorization.k8s.io", "subjectaccessreviews", "", "", ""),
    ("update", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager"),
    ("update", "coordination.k8s.io", "leases", "", SYSTEM_NS, "someone-else"),
    ("create", "scheduling.volcano.sh", "queues", "", "", ""),
    ("list", "scheduling.volcano.sh", "queues", "", "", ""),
    ("update", "scheduling.volcano.sh", "queues", "", "", "research"),
    ("create", "scheduling.k8s.io", "priorityclasses", "", "", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", ""),
    ("impersonate", "", "users", "", "", ""),
]


def _can_i(http: httpx.Client, verb: str, group: str, resource: str, sub: str, ns: str, name: str) -> bool:
    attributes = {"verb": verb, "group": group, "resource": resource, "subresource": sub}
    attributes |= {"namespace": ns, "name": name}
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {k: v for k, v in attributes.items() if v}},
    }
    answer = http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
    answer.raise_for_status()
    return bool(answer.json()["status"].get("allowed"))


def test_service_account_has_exactly_the_access_the_operator_needs(cluster: Cluster, sa_token: str) -> None:
    with _as_service_account(cluster, sa_token) as http:
        missing = [a for a in NEEDED if not _can_i(http, *a)]
        excess = [a for a in DENIED if _can_i(http, *a)]
        assert missing == [], f"shipped RBAC lacks {missing}"
        assert excess == [], f"shipped RBAC grants {excess}"
        # And a real request is refused with 403, naming the ServiceAccount.
        secrets_answer = http.get("/api/v1/namespaces/kube-system/secrets")
        assert secrets_answer.status_code == 403
        assert USERNAME in secrets_answer.json()["message"]
        job = torchjob("sneaky", None)
        created = http.post(f"/apis/pyroclast.dev/v1alpha1/namespaces/{SYSTEM_NS}/torchjobs", json=job)
        assert created.status_code == 403


def _start_operator(
    kubeconfig: Path, ports: tuple[int, int], log_path: Path, pod: str
) -> subprocess.Popen[bytes]:
    """`pyroclast run` as the Deployment runs it (leader election, JSON logs), as its own process; its pod is
    `pod`."""
    metrics, probes = ports
    argv = [
        sys.executable, "-m", "pyroclast.cli", "run", "--kubeconfig", str(kubeconfig), "--leader-elect",
        "--metrics-bind-address", f"{HOST}:{metrics}", "--health-probe-bind-address", f"{HOST}:{probes}",
        "--log-format", "json", "--kube-api-qps", "20", "--kube-api-burst", "40",
    ]  # fmt: skip
    # The Lease's namespace comes from POD_NAMESPACE, and the pod to label as the leader's from POD_NAME, as
    # the Deployment sets them from the downward API.
    env = {**os.environ, "POD_NAMESPACE": SYSTEM_NS, "POD_NAME": pod}
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


def _scrape(port: int) -> dict[str, float]:
    """``name{labels}`` -> value from the operator's /metrics."""
    text = httpx.get(f"http://{HOST}:{port}/metrics", timeout=5).text
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://{HOST}:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_operator_as_the_service_account_runs_jobs_with_only_the_shipped_rbac(
    cluster: Cluster, sa_token: str, namespace: str, nodes: NodePool, tmp_path: Path
) -> None:
    [node, _] = nodes(2, cpu="4")
    kubeconfig = _in_cluster_kubeconfig(cluster, sa_token, tmp_path / "in-cluster.kubeconfig")
    as_operator = await Client.connect(kubeconfig)  # the operator's own client code, on those credentials
    try:
        review = await as_operator.create(SELF_SUBJECT_REVIEWS, {"apiVersion": "authentication.k8s.io/v1"})
        assert review["status"]["userInfo"]["username"] == USERNAME
        with pytest.raises(Forbidden, match=USERNAME):
            await as_operator.list(SECRETS, "kube-system")
    finally:
        await as_operator.aclose()
    metrics, probes, log_path = free_port(), free_port(), tmp_path / "operator.log"
    created = _admitted_pod(cluster, SYSTEM_NS, "pyroclast-operator", node)
    own_pod = created["metadata"]["name"]
    assert LEADER_LABEL not in created["metadata"]["labels"]
    proc = _start_operator(kubeconfig, (metrics, probes), log_path, own_pod)
    admin = await Client.connect(cluster.kubeconfig)

    async def leader_label() -> str | None:
        pod = await admin.get(PODS, own_pod, SYSTEM_NS)
        return (pod["metadata"].get("labels") or {}).get(LEADER_LABEL)

    try:
        deadline = time.monotonic() + 60
        while not _ready(probes):  # every informer listed and watched cluster-wide as the ServiceAccount
            assert proc.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, "operator not ready in 60 s: " + log_path.read_text()[-4000:]
            await anyio.sleep(0.5)

        # The leader labelled its own pod, with the shipped Role's `patch` on pods of its namespace.
        assert await wait_for("the leader label on the operator's pod", leader_label, within=30) == "true"

        happy = torchjob("happy", nodes, annotations={"pyroclast.dev/test-succeed-after": "3s"})
        await admin.create(TORCHJOBS, happy, namespace)
        evicted = torchjob(
            "evicted",
            nodes,
            annotations={"pyroclast.dev/test-evict": "true"},
            failurePolicy={"maxFailureRestarts": 0, "maxPreemptionRestarts": 2},
        )
        await admin.create(TORCHJOBS, evicted, namespace)

        done = await wait_phase(admin, namespace, "happy", "Succeeded", 90)
        assert condition(done, "Running") is not None
        status = await wait_phase(admin, namespace, "evicted", "Failed", 120)
        failed = condition(status, "Failed")
        assert failed is not None
        assert failed["reason"] == "PreemptionBudgetExhausted"
        assert status["preemptionRestarts"] == 2
        assert status.get("failureRestarts", 0) == 0

        async def podgroups_freed() -> bool:
            return not (await admin.list(PODGROUPS, namespace)).items

        await wait_for("PodGroups deleted", podgroups_freed)
        pods = [p["metadata"]["name"] for p in (await admin.list(PODS, namespace)).items]
        assert sorted(n for n in pods if n.startswith("happy-")) == ["happy-worker-0", "happy-worker-1"]
        lease = await admin.get(LEASES, LEASE, SYSTEM_NS)
        assert lease["spec"]["holderIdentity"].startswith(os.uname().nodename)
        assert (await status_of(admin, namespace, "happy"))["phase"] == "Succeeded"
        scraped = _scrape(metrics)
        assert scraped['leader_election_master_status{name="pyroclast-operator"}'] == 1.0
        assert scraped['leader_election_pod_label_total{action="set",result="success"}'] == 1.0
        assert scraped['leader_election_pod_label_total{action="clear",result="success"}'] == 1.0
        throttled = [
            v for k, v in scraped.items() if k.startswith("rest_client_rate_limiter_duration_seconds_count")
        ]
        assert sum(throttled) > 0  # every request went through the --kube-api-qps bucket
        assert not [k for k in scraped if k.startswith("rest_client_requests_total") and 'code="403"' in k]
    finally:
        await admin.aclose()
        stop_process(proc)
        cluster.api.request(
            "DELETE", f"/api/v1/namespaces/{SYSTEM_NS}/pods/{own_pod}", body={"gracePeriodSeconds": 0}
        )
        print(f"operator log (tail):\n{log_path.read_text()[-6000:]}")  # shown when the test fails
    log = log_path.read_text()
    assert proc.returncode == 0, log[-4000:]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    (start,) = [line for line in lines if line["msg"] == "pyroclast operator starting"]
    assert (start["qps"], start["burst"], start["leader_elect"]) == (20.0, 40, True)
    refused = [line for line in lines if "403" in line["msg"] or "forbidden" in line["msg"].lower()]
    assert refused == [], refused


async def test_helm_watch_namespace_confines_the_operator_to_that_namespace(
    cluster: Cluster, base_install: list[JsonObject], namespace: str
) -> None:
    release, home = f"pyro-{secrets.token_hex(3)}", f"helm-{secrets.token_hex(3)}"
    docs = helm_template(release, home, f"watchNamespace={namespace}", "rbac.aggregateToUserRoles=false")
    args = build_parser().parse_args(
        _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert manager_options(args)["namespace"] == namespace
    assert not [d for d in docs if d["kind"].startswith("Cluster")], "no cluster-wide rights when namespaced"
    cluster.create_namespace(home)
    try:
        cluster.kubectl("apply", "-f", "-", input=_without_crd(docs))
        with _as_service_account(cluster, _token(cluster, home, f"{release}-pyroclast")) as http:
            assert _can_i(http, "watch", "", "pods", "", namespace, "")
            assert _can_i(http, "patch", "pyroclast.dev", "torchjobs", "status", namespace, "job")
            assert _can_i(http, "update", "coordination.k8s.io", "leases", "", home, LEASE)
            assert not _can_i(http, "watch", "", "pods", "", "", "")
            assert not _can_i(http, "create", "", "pods", "", "kube-system", "")
            assert not _can_i(http, "list", "pyroclast.dev", "torchjobs", "", SYSTEM_NS, "")
    finally:
        _uninstall(cluster, docs)
        cluster.api.delete(f"/api/v1/namespaces/{home}")


# --- live progress over TLS ---------------------------------------------------------------------------------


def _progress_flags(container: JsonObject, secret: JsonObject, tmp_path: Path) -> JsonObject:
    """The operator's progress options from the rendered args, with the Secret written where it is mounted;
    its certificate must load."""
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "progress-tls"]
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    args = [a.replace(mount["mountPath"], str(tmp_path)) for a in container["args"]]
    options = progress_options(build_parser().parse_args(args))
    options["progress_bind"].tls.context()  # raises when the key does not match the certificate
    return options


def test_kustomize_progress_components_render_and_the_server_accepts_them(
    cluster: Cluster, base_install: list[JsonObject], tmp_path: Path
) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "base", overlay)],  # kustomize takes relative paths
                "components": [os.path.relpath(DEPLOY / "components" / "progress", overlay)],
            }
        )
    )
    docs = _documents(
        cluster.kubectl("kustomize", "--load-restrictor=LoadRestrictionsNone", str(overlay)).stdout
    )
    container = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--progress-url=https://pyroclast-progress.pyroclast-system.svc:8443" in container["args"]
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert services == {"pyroclast-operator-metrics", "pyroclast-progress"}
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=_without_crd(docs))


async def test_helm_progress_serves_a_generated_certificate_workers_can_verify(tmp_path: Path) -> None:
    release, namespace = "pyro", "ml-system"
    docs = helm_template(release, namespace, "progress.enabled=true")
    host = f"{release}-pyroclast-progress.{namespace}.svc"
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert (secret["type"], secret["metadata"]["name"]) == (
        "kubernetes.io/tls",
        f"{release}-pyroclast-progress-tls",
    )
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    options = _progress_flags(container, secret, tmp_path)
    assert options["progress_url"] == f"https://{host}:8443"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "progress-tls", "secret": {"secretName": secret["metadata"]["name"]}} in volumes
    # The certificate names the Service and chains to ca.crt: a worker trusting ca.crt reaches the endpoint.
    endpoint = HttpServer(probes_app({}, {}), HOST, 0, name="progress", tls=options["progress_bind"].tls)
    async with anyio.create_task_group() as tg:
        port = await tg.start(endpoint.serve)
        verify = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        async with httpx.AsyncClient(verify=verify) as http:
            answer = await http.get(f"https://{HOST}:{port}/healthz", extensions={"sni_hostname": host})
        assert answer.status_code == 200
        tg.cancel_scope.cancel()
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-progress"))
    assert service["spec"]["ports"][0]["targetPort"] == "progress"

    managed = helm_template(
        release, namespace, "progress.enabled=true", "progress.tls.certManager.enabled=true"
    )
    assert not [d for d in managed if d["kind"] == "Secret"]
    certificate = next(d for d in managed if d["kind"] == "Certificate" and not d["spec"].get("isCA"))
    assert certificate["spec"]["secretName"] == secret["metadata"]["name"]
    assert host in certificate["spec"]["dnsNames"]
    issuers = {d["metadata"]["name"] for d in managed if d["kind"] == "Issuer"}
    assert certificate["spec"]["issuerRef"]["name"] in issuers
    own = helm_template(release, namespace, "progress.enabled=true", "progress.tls.secretName=mine")
    assert not [d for d in own if d["kind"] in ("Secret", "Certificate")]
    volumes = next(d for d in own if d["kind"] == "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "progress-tls", "secret": {"secretName": "mine"}} in volumes


def test_helm_rates_reach_the_operator_from_a_configmap(tmp_path: Path) -> None:
    values = ("rates.currency=EUR", "rates.perHour.gpu=2.5", "rates.queues.spot.gpu=1")
    docs = helm_template("pyro", "ml-system", *values)
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "pyro-pyroclast-rates"
    )
    path = tmp_path / "rates.yaml"
    path.write_text(config["data"]["rates.yaml"])
    rates = load_rates(path)  # what the operator reads at start
    assert (rates.currency, rates.prices("spot"), rates.prices("default")) == ("EUR", (1, 0, 0), (2.5, 0, 0))
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert "--rates=/etc/pyroclast/rates/rates.yaml" in container["args"]
    assert {"name": "rates", "mountPath": "/etc/pyroclast/rates", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "rates", "configMap": {"name": "pyro-pyroclast-rates"}} in pod["spec"]["volumes"]
    assert "pyroclast.dev/rates-checksum" in pod["metadata"]["annotations"]  # a change rolls the pods
    plain = helm_template("pyro", "ml-system")
    assert not any(d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-rates") for d in plain)
