"""Unit tests of the cluster rig's pure parts (no processes started)."""

from __future__ import annotations

import re
import socket
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from e2e.cluster import binaries, flags, ports, stages, volcano
from e2e.cluster.kubeconfig import kubeconfig_dict
from e2e.cluster.modules import ModuleNotFoundInCacheError, kwok_dir
from e2e.cluster.nodes import GPU_RESOURCE, node_manifest, node_ready
from e2e.cluster.pki import ClusterPKI
from e2e.cluster.process import Component, ComponentStartError, PortInUseError
from tests.required import missing


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("name", "var"),
    [
        ("kube-apiserver", "TEST_ASSET_KUBE_APISERVER"),
        ("vc-controller-manager", "TEST_ASSET_VC_CONTROLLER_MANAGER"),
        ("etcd", "TEST_ASSET_ETCD"),
        ("3rd.party", "TEST_ASSET_RD_PARTY"),
    ],
)
def test_asset_env_var_is_sanitised_like_envtest(name: str, var: str) -> None:
    assert binaries.asset_env_var(name) == var


def test_binary_lookup_order(tmp_path: Path) -> None:
    explicit = _exe(tmp_path / "explicit" / "etcd")
    assets = _exe(tmp_path / "assets" / "etcd")
    rig = _exe(tmp_path / "rig" / "etcd")
    env = {
        "TEST_ASSET_ETCD": str(explicit),
        "KUBEBUILDER_ASSETS": str(assets.parent),
        "PYROCLAST_RIG_BIN": str(rig.parent),
    }
    assert binaries.find_binary("etcd", env) == explicit
    del env["TEST_ASSET_ETCD"]
    assert binaries.find_binary("etcd", env) == assets
    del env["KUBEBUILDER_ASSETS"]
    assert binaries.find_binary("etcd", env) == rig


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    _exe(tmp_path / "etcd")
    with pytest.raises(binaries.BinaryNotFoundError, match="kwok") as err:
        binaries.find_all(("etcd", "kwok"), {"KUBEBUILDER_ASSETS": str(tmp_path)})
    assert "etcd," not in str(err.value)


def test_free_ports_are_distinct_and_bindable() -> None:
    picked = {ports.free_port() for _ in range(20)}
    assert len(picked) == 20
    port = picked.pop()
    with socket.socket() as s:
        s.bind((ports.HOST, port))


def test_pki_certificates_chain_to_their_cas_with_the_names_tls_needs(tmp_path: Path) -> None:
    pki = ClusterPKI.create(tmp_path, flags.SERVICE_IP)
    serving_ca = x509.load_pem_x509_certificate(pki.serving_ca.read_bytes())
    server = x509.load_pem_x509_certificate(pki.apiserver.cert.read_bytes())
    server.verify_directly_issued_by(serving_ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", flags.SERVICE_IP}
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)

    pair = pki.client_cert("alice", ["team-a", "team-b"])
    client = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    client.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.client_ca.read_bytes()))
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    orgs = [a.value for a in client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["team-a", "team-b"]
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600


def test_kubeconfig_embeds_credentials(tmp_path: Path) -> None:
    pki = ClusterPKI.create(tmp_path, flags.SERVICE_IP)
    doc = kubeconfig_dict("https://127.0.0.1:6443", pki.serving_ca, "admin", pki.client_cert("admin"))
    assert doc["current-context"] == doc["contexts"][0]["name"]
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert doc["users"][0]["user"]["client-key-data"]


def _layout(tmp_path: Path) -> flags.Layout:
    return flags.Layout(
        workdir=tmp_path,
        binaries={name: Path(f"/bin/{name}") for name in binaries.NAMES},
        pki=ClusterPKI.create(tmp_path / "pki", flags.SERVICE_IP),
        admin_kubeconfig=tmp_path / "admin.kubeconfig",
        stages_file=tmp_path / "stages.yaml",
        scheduler_conf=tmp_path / "sched.conf",
    )


POD_HOST = "10.150.0.1"


def _binds(corefile: str) -> list[str]:
    return [line.split()[1] for line in corefile.splitlines() if line.strip().startswith("bind ")]


@pytest.mark.parametrize("pod_host", [None, POD_HOST])
def test_every_listener_is_on_loopback(tmp_path: Path, pod_host: str | None) -> None:
    """...except, with a pod network, cluster DNS and the apiserver forwarder on its host address."""
    lay = _layout(tmp_path)
    lay.pod_host = pod_host
    for name, build in flags.ARGV.items():
        if name == "apiserver-forwarder" and pod_host is None:
            with pytest.raises(RuntimeError, match="pod network"):
                build(lay)
            continue
        argv = build(lay)
        joined = " ".join(argv)
        assert "0.0.0.0" not in joined, name
        for arg in argv:
            if re.search(r"(address|urls?|port)=", arg) and "--secure-port" not in arg:
                assert "127.0.0.1" in arg, f"{name}: {arg}"
    corefile = (tmp_path / "Corefile").read_text()
    assert _binds(corefile) == ["127.0.0.1", *([pod_host] if pod_host else [])]
    assert re.findall(r"(?:health|ready) (\S+):\d+", corefile) == ["127.0.0.1", "127.0.0.1"]
    if pod_host is not None:
        forwarder = flags.apiserver_forwarder(lay)
        assert f"--listen={pod_host}:{lay.ports['apiserver-for-pods']}" in forwarder
        assert f"--to=127.0.0.1:{lay.ports['kube-apiserver']}" in forwarder
    assert all(isinstance(p, int) and p > 0 for p in lay.ports.values())
    assert len(set(lay.ports.values())) == len(lay.ports)


def test_component_flags_follow_the_design(tmp_path: Path) -> None:
    lay = _layout(tmp_path)
    api = flags.kube_apiserver(lay)
    assert "--authorization-mode=RBAC" in api
    assert f"--service-cluster-ip-range={flags.SERVICE_CIDR}" in api
    kcm = " ".join(flags.kube_controller_manager(lay))
    for controller in ("garbage-collector-controller", "namespace-controller", "node-lifecycle-controller"):
        assert controller in kcm
    assert "--leader-elect=false" in kcm
    assert f"--cidr={flags.POD_CIDR}" in flags.kwok(lay)
    assert "--leader-elect=false" in flags.vc_scheduler(lay)
    assert "--controllers=queue-controller,pg-controller" in flags.vc_controller_manager(lay)
    lay.watch_cache = False
    assert "--watch-cache=false" in flags.kube_apiserver(lay)


def test_the_peers_job_controllers_run_only_when_asked(tmp_path: Path) -> None:
    """Default rigs have no controller but the operator's making worker pods; the benchmarks ask for
    Volcano's job controller (vcjob) and Kubernetes' (under JobSet) with as many threads as every operator."""
    lay = _layout(tmp_path)
    vc, kcm = flags.vc_controller_manager(lay), flags.kube_controller_manager(lay)
    assert "--controllers=queue-controller,pg-controller" in vc
    assert not [a for a in vc if a.startswith("--worker-threads")]
    [controllers] = [a.split("=", 1)[1] for a in kcm if a.startswith("--controllers=")]
    assert "job-controller" not in controllers.split(",")
    lay.volcano_jobs = lay.kube_jobs = True
    vc, kcm = flags.vc_controller_manager(lay), flags.kube_controller_manager(lay)
    assert "--controllers=queue-controller,pg-controller,job-controller" in vc
    assert "--worker-threads=16" in vc
    assert not [a for a in vc if a.startswith("--concurrent")]  # a KCM flag, fatal to vc-controller-manager
    [controllers] = [a.split("=", 1)[1] for a in kcm if a.startswith("--controllers=")]
    assert "job-controller" in controllers.split(",")
    assert "--concurrent-job-syncs=16" in kcm


def test_defaults_are_a_real_clusters(tmp_path: Path) -> None:
    """Watch cache, ServiceAccount and ResourceQuota admission, and the controllers behind them."""
    lay = _layout(tmp_path)
    api = flags.kube_apiserver(lay)
    assert not [a for a in api if a.startswith("--watch-cache")], "the watch cache is on unless asked"
    assert not [a for a in api if a.startswith("--disable-admission-plugins")]
    [enabled] = [a.split("=", 1)[1] for a in api if a.startswith("--enable-admission-plugins=")]
    assert {"ServiceAccount", "ResourceQuota"} <= set(enabled.split(","))
    kcm = flags.kube_controller_manager(lay)
    [controllers] = [a.split("=", 1)[1] for a in kcm if a.startswith("--controllers=")]
    wanted = {
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "root-ca-certificate-publisher-controller",
        "resourcequota-controller",
        "replicaset-controller",
        "deployment-controller",
    }
    assert wanted <= set(controllers.split(","))
    assert f"--service-account-private-key-file={lay.pki.sa_private_key}" in kcm
    assert f"--root-ca-file={lay.pki.serving_ca}" in kcm


def test_scheduler_conf_enables_preemption(tmp_path: Path) -> None:
    conf = yaml.safe_load(volcano.write_scheduler_conf(tmp_path / "c.yaml").read_text())
    actions = [a.strip() for a in conf["actions"].split(",")]
    assert actions == ["enqueue", "allocate", "preempt", "reclaim", "backfill"]
    plugins = [p["name"] for tier in conf["tiers"] for p in tier["plugins"]]
    assert {"priority", "gang", "proportion", "predicates"} <= set(plugins)
    assert "capacity" not in plugins  # proportion and capacity are mutually exclusive


def test_project_stages_are_keyed_on_annotations() -> None:
    docs = [
        d
        for p in sorted(stages.PROJECT_STAGE_DIR.glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d
    ]
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert set(by_name) == {
        "pyroclast-test-succeed-after",
        "pyroclast-test-fail-after",
        "pyroclast-test-evict",
        "pyroclast-test-report-after",
    }
    succeed = by_name["pyroclast-test-succeed-after"]["spec"]
    assert "pyroclast.dev/test-succeed-after" in succeed["delay"]["durationFrom"]["expressionFrom"]
    assert "phase: Succeeded" in succeed["next"]["statusTemplate"]
    fail = by_name["pyroclast-test-fail-after"]["spec"]["next"]["statusTemplate"]
    assert "pyroclast.dev/test-exit-code" in fail
    assert "phase: Failed" in fail
    evict = by_name["pyroclast-test-evict"]["spec"]["next"]["statusTemplate"]
    assert "reason: Evicted" in evict
    assert "DisruptionTarget" in evict
    report = by_name["pyroclast-test-report-after"]["spec"]
    assert "pyroclast.dev/test-report-after" in report["delay"]["durationFrom"]["expressionFrom"]
    assert "pyroclast.dev/test-termination-message" in report["next"]["statusTemplate"]


def test_kwok_config_holds_its_options_then_upstream_and_project_stages(tmp_path: Path) -> None:
    try:
        module = kwok_dir()
    except ModuleNotFoundInCacheError as exc:
        missing(f"kwok module not in the rig's Go module cache (bash e2e/build-cluster.sh): {exc}")
    options, *docs = yaml.safe_load_all(stages.write_stages(module, tmp_path / "s.yaml").read_text())
    assert options["kind"] == "KwokConfiguration"
    assert options["options"]["podPlayStageParallelism"] == stages.STAGE_PARALLELISM
    assert {d["kind"] for d in docs} == {"Stage"}
    names = [d["metadata"]["name"] for d in docs]
    assert "pod-complete" not in names
    for expected in ("node-initialize", "pod-ready", "pod-delete", "node-not-ready", "pyroclast-test-evict"):
        assert expected in names


def test_node_manifest_and_readiness() -> None:
    node = node_manifest("n1", cpu="96", memory="1Ti", gpus=8, labels={"pool": "a"})
    assert node["status"]["capacity"][GPU_RESOURCE] == "8"
    assert node["status"]["allocatable"]["cpu"] == "96"
    assert node["metadata"]["labels"]["pool"] == "a"
    assert GPU_RESOURCE not in node_manifest("n2")["status"]["capacity"]
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}, "spec": {}}
    assert node_ready(ready)
    tainted = {**ready, "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}
    assert not node_ready(tainted)
    assert not node_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})


def test_component_that_dies_reports_its_log(tmp_path: Path) -> None:
    comp = Component(
        name="dier",
        argv=["/bin/sh", "-c", "echo starting; echo 'fatal: boom' >&2; exit 3"],
        log_path=tmp_path / "dier.log",
        healthy=lambda: False,
        start_timeout=10,
    )
    with pytest.raises(ComponentStartError, match="fatal: boom") as err:
        comp.start()
    assert "exited with code 3" in str(err.value)


def test_port_clash_is_recognised(tmp_path: Path) -> None:
    comp = Component(
        name="clash",
        argv=["/bin/sh", "-c", "echo 'listen tcp 127.0.0.1:1: bind: address already in use'; exit 1"],
        log_path=tmp_path / "clash.log",
        healthy=lambda: False,
        start_timeout=10,
    )
    with pytest.raises(PortInUseError):
        comp.start()


def test_component_that_never_gets_healthy_times_out_and_is_stopped(tmp_path: Path) -> None:
    comp = Component(
        name="sleeper",
        argv=["/bin/sh", "-c", "echo waiting; exec sleep 60"],
        log_path=tmp_path / "sleeper.log",
        healthy=lambda: False,
        start_timeout=1,
    )
    with pytest.raises(ComponentStartError, match="not healthy after"):
        comp.start()
    assert not comp.running
