"""deploy/: the manifests agree with the operator's flags, the README's RBAC table, the generated CRD and the
metrics the runtime exports. (That they install and work is e2e/tests/test_deploy_install.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from api.crd import CRD_FILENAME, RUNTIME_CRD_FILENAMES, render, render_runtime
from controller.runtime.metrics import REGISTRY
from controller.runtime.objects import JsonObject
from controller.runtime.throttle import RATE_LIMITER_DURATION
from controller.torchjob.metrics import JOBS
from e2e.helm import helm_template
from pyroclast.cli import build_parser
from pyroclast.operator import LEADER_LABEL, manager_options, progress_options

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _docs(path: Path) -> list[JsonObject]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _one(docs: list[JsonObject], kind: str, name: str) -> JsonObject:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _container(deployment: JsonObject) -> JsonObject:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("path", ["base/deployment.yaml", "overlays/production/operator.yaml"])
def test_deployment_args_are_valid_operator_flags(path: str) -> None:
    args = build_parser().parse_args(_container(_docs(DEPLOY / path)[0])["args"])
    options = manager_options(args)
    assert options["leader_election"] is True
    # Probes and Prometheus reach the pod IP, so the endpoints must not bind loopback.
    assert options["metrics_bind_address"].startswith("0.0.0.0:")
    assert options["health_probe_bind_address"] == "0.0.0.0:8081"


def test_deployment_is_hardened_and_highly_available() -> None:
    (deployment,) = _docs(DEPLOY / "base" / "deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(deployment)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"requests", "limits"} <= container["resources"].keys()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] == "probes"
    assert ports["probes"] == 8081
    # Graceful shutdown (30 s for in-flight reconciles) fits in the grace period.
    assert pod["terminationGracePeriodSeconds"] > 30


def test_leader_election_role_names_the_lease_the_operator_uses() -> None:
    role = _one(_docs(DEPLOY / "base" / "rbac.yaml"), "Role", "pyroclast-leader-election")
    args = build_parser().parse_args(_container(_docs(DEPLOY / "base" / "deployment.yaml")[0])["args"])
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert [r["resourceNames"] for r in named] == [[args.leader_election_id]]


def _rbac_triples(rules: list[JsonObject]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _readme_rbac_table() -> set[tuple[str, str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### RBAC", 1)[1].split("\n#", 1)[0]
    triples: set[tuple[str, str, str]] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        group = cells[0].strip("`")
        group = "" if group == "core" else group
        verbs = [v.strip() for v in cells[2].split(",")]
        for resource in re.findall(r"`([^`]+)`", cells[1]):
            triples |= {(group, resource, verb) for verb in verbs}
    return triples


def test_readme_rbac_table_lists_exactly_the_shipped_permissions() -> None:
    docs = _docs(DEPLOY / "base" / "rbac.yaml")
    shipped = _rbac_triples(_one(docs, "ClusterRole", "pyroclast-operator")["rules"])
    shipped |= _rbac_triples(_one(docs, "Role", "pyroclast-leader-election")["rules"])
    assert _readme_rbac_table() == shipped


def test_volcano_queues_are_only_read_one_by_one() -> None:
    """The operator `get`s the queue of a waiting job (to say when it is missing or Closed): no list or watch
    (no informer on every queue), no write; the chart grants it with its cluster-wide rights only."""
    docs = _docs(DEPLOY / "base" / "rbac.yaml")
    shipped = _rbac_triples(_one(docs, "ClusterRole", "pyroclast-operator")["rules"])
    assert {t for t in shipped if t[1] == "queues"} == {("scheduling.volcano.sh", "queues", "get")}
    chart = (DEPLOY / "helm" / "pyroclast" / "templates" / "rbac.yaml").read_text()
    cluster_only = chart.split('{{- if eq $kind "ClusterRole" }}', 1)[1].split("{{- end }}", 1)[0]
    assert "resources: [queues]\n    verbs: [get]\n" in cluster_only
    assert chart.count("resources: [queues]") == 1


def test_chart_crd_is_the_generated_one() -> None:
    chart_crd = DEPLOY / "helm" / "pyroclast" / "crds" / CRD_FILENAME
    assert chart_crd.read_text() == render(), "stale: run `make crd` (pyroclast crd --write ... for both)"
    for kind, name in RUNTIME_CRD_FILENAMES.items():
        assert (chart_crd.parent / name).read_text() == render_runtime(kind), "stale: run `make crd`"


def test_chart_defaults_match_the_kustomize_base() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "pyroclast" / "values.yaml").read_text())
    args = build_parser().parse_args(_container(_docs(DEPLOY / "base" / "deployment.yaml")[0])["args"])
    assert values["replicas"] == 2
    assert values["concurrency"] == args.workers
    assert (values["kubeApi"]["qps"], values["kubeApi"]["burst"]) == (args.kube_api_qps, args.kube_api_burst)
    assert values["logFormat"] == args.log_format
    assert values["leaderElection"]["id"] == args.leader_election_id


def _exported_names() -> set[str]:
    names: set[str] = set()
    families: list[Metric] = list(REGISTRY.collect())
    for collector in list(REGISTRY._collector_to_names):  # pyright: ignore[reportPrivateUsage]
        describe = getattr(collector, "describe", None)
        families += list(describe()) if describe is not None else []
    for family in families:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def test_dashboard_queries_only_metrics_the_operator_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "pyroclast-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\b([a-z_]+)(?:\{|\[)", e) if "_" in m}
    used -= {"histogram_quantile", "label_values"}
    assert {JOBS._name, RATE_LIMITER_DURATION._name + "_bucket"} <= used  # pyright: ignore[reportPrivateUsage]
    assert used - _exported_names() == set()


def test_example_priority_classes_cover_the_examples() -> None:
    classes = {d["metadata"]["name"] for d in _docs(DEPLOY / "examples" / "priorityclasses.yaml")}
    queues = {d["metadata"]["name"] for d in _docs(DEPLOY / "examples" / "queues.yaml")} | {"default"}
    for example in sorted((DEPLOY / "examples").glob("torchjob-*.yaml")):
        scheduling = yaml.safe_load(example.read_text())["spec"].get("scheduling") or {}
        if "priorityClassName" in scheduling:
            assert scheduling["priorityClassName"] in classes, example.name
        assert scheduling.get("queue", "default") in queues, example.name


@pytest.mark.parametrize("dockerfile", ["operator.Dockerfile", "workload.Dockerfile"])
def test_dockerfiles_copy_what_exists_and_the_ignore_file_lets_it_in(dockerfile: str) -> None:
    images = DEPLOY / "images"
    lines = (images / dockerfile).read_text().splitlines()
    sources = [line.split()[1] for line in lines if line.startswith("COPY ") and "--from=" not in line]
    assert sources, "no COPY in the Dockerfile"
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (images / f"{dockerfile}.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source in allowed, f"{source} is excluded by {dockerfile}.dockerignore"
    assert any(line.startswith("USER ") and not line.startswith("USER 0") for line in lines)


def test_operator_image_entrypoint_is_the_console_script() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    entrypoint = next(
        line
        for line in (DEPLOY / "images" / "operator.Dockerfile").read_text().splitlines()
        if line.startswith("ENTRYPOINT")
    )
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["pyroclast"]
    assert 'pyroclast = "pyroclast.cli:main"' in pyproject


def _json_patched(document: JsonObject, ops: list[JsonObject]) -> JsonObject:
    """`document` with kustomize's JSON-patch ``add`` ops applied (the only op the components use)."""
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = op["path"].strip("/").split("/")
        node: Any = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if last == "-":
            node.append(op["value"])
        else:
            node[last] = op["value"]
    return document


def test_progress_components_serve_tls_from_the_mounted_secret_behind_their_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    component = yaml.safe_load((DEPLOY / "components" / "progress" / "kustomization.yaml").read_text())
    (patch,) = component["patches"]
    assert patch["target"]["name"] == "pyroclast-operator"
    deployment = _json_patched(_docs(DEPLOY / "base" / "deployment.yaml")[0], yaml.safe_load(patch["patch"]))
    container = _container(deployment)
    monkeypatch.setattr("pyroclast.operator.os.access", lambda *_: True)  # the Secret is mounted in the pod
    options = progress_options(build_parser().parse_args(container["args"]))
    bind, url = options["progress_bind"], options["progress_url"]
    assert bind.host == "0.0.0.0"
    assert bind.tls is not None
    (service,) = _docs(DEPLOY / "components" / "progress" / "service.yaml")
    (port,) = service["spec"]["ports"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[port["targetPort"]] == bind.port
    # Only the leader serves progress and only the leader's pod carries the label: the Service selects it too.
    selector = dict(service["spec"]["selector"])
    assert selector.pop(LEADER_LABEL) == "true"
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert url == f"https://{host}:{port['port']}"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "progress-tls"]
    assert mount["readOnly"] is True
    assert {bind.tls.cert_file, bind.tls.key_file} == {
        f"{mount['mountPath']}/tls.crt",
        f"{mount['mountPath']}/tls.key",
    }
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "progress-tls"]
    issued = _docs(DEPLOY / "components" / "progress-cert-manager" / "certificate.yaml")
    serving = _one(issued, "Certificate", "pyroclast-progress")
    assert serving["spec"]["secretName"] == volume["secret"]["secretName"]
    assert host in serving["spec"]["dnsNames"]
    issuer = _one(issued, "Issuer", serving["spec"]["issuerRef"]["name"])
    assert _one(issued, "Certificate", issuer["spec"]["ca"]["secretName"])["spec"]["isCA"] is True


def test_chart_progress_values_default_off_on_the_ports_of_the_components() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "pyroclast" / "values.yaml").read_text())
    (service,) = _docs(DEPLOY / "components" / "progress" / "service.yaml")
    assert values["progress"]["enabled"] is False
    assert values["progress"]["port"] == service["spec"]["ports"][0]["port"]


def _downward_env(container: JsonObject) -> dict[str, str]:
    return {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}


def test_the_leader_may_label_only_pods_of_its_own_namespace() -> None:
    """The leader merge-patches its own pod (POD_NAME, POD_NAMESPACE from the downward API): `patch` on pods
    in the namespaced leader-election Role, never cluster-wide."""
    (deployment,) = _docs(DEPLOY / "base" / "deployment.yaml")
    env = _downward_env(_container(deployment))
    assert (env["POD_NAME"], env["POD_NAMESPACE"]) == ("metadata.name", "metadata.namespace")
    docs = _docs(DEPLOY / "base" / "rbac.yaml")
    role = _rbac_triples(_one(docs, "Role", "pyroclast-leader-election")["rules"])
    assert {t for t in role if t[1] == "pods"} == {("", "pods", "patch")}
    cluster = _rbac_triples(_one(docs, "ClusterRole", "pyroclast-operator")["rules"])
    assert ("", "pods", "patch") not in cluster


def test_chart_progress_service_selects_the_leaders_pod_only() -> None:
    release, namespace = "pyro", "ml-system"
    docs = helm_template(release, namespace, "progress.enabled=true")
    service = _one(docs, "Service", f"{release}-pyroclast-progress")
    deployment = _one(docs, "Deployment", f"{release}-pyroclast")
    selector = dict(service["spec"]["selector"])
    assert selector.pop(LEADER_LABEL) == "true"
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    container = _container(deployment)
    assert "--leader-elect" in container["args"]
    env = _downward_env(container)
    assert (env["POD_NAME"], env["POD_NAMESPACE"]) == ("metadata.name", "metadata.namespace")
    role = _rbac_triples(_one(docs, "Role", f"{release}-pyroclast-leader-election")["rules"])
    assert {t for t in role if t[1] == "pods"} == {("", "pods", "patch")}
    # Without leader election nothing is labelled (one replica serves): the Service selects the pods alone.
    alone = helm_template(release, namespace, "progress.enabled=true", "leaderElection.enabled=false")
    selector = _one(alone, "Service", f"{release}-pyroclast-progress")["spec"]["selector"]
    assert LEADER_LABEL not in selector
    assert "--leader-elect" not in _container(_one(alone, "Deployment", f"{release}-pyroclast"))["args"]
