"""Command lines of the cluster's components.

Every listener is on 127.0.0.1, except those for pods on the pod network's host address (cluster DNS, the
apiserver forwarder); leader election is off. The defaults are a real cluster's: the apiserver's watch cache,
ServiceAccount and ResourceQuota admission, KCM's service-account, token, root-CA, quota, ReplicaSet and
Deployment controllers, and the default scheduler beside Volcano.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from e2e.cluster import dns, network, volcano
from e2e.cluster.pki import ClusterPKI
from e2e.cluster.ports import HOST, free_port

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR; in the serving certificate's SANs
POD_CIDR = "10.244.0.0/16"  # kwok's fake pod IPs; never connect to them

FORWARDER = Path(__file__).resolve().parent / "forward.py"

# Controllers a training operator and its deployment rely on (canonical names from kube-controller-manager's
# names pkg): pods get ServiceAccounts, tokens and the root CA ConfigMap; quotas are counted; Deployments run.
KCM_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "resourcequota-controller",
    "replicaset-controller",
    "deployment-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
    "endpointslice-controller",
)
# Admission plugins the rig names explicitly (on by default upstream; envtest turns ServiceAccount off).
ADMISSION_PLUGINS = ("ServiceAccount", "ResourceQuota")

COMPONENT_ORDER = (
    "etcd",
    "kube-apiserver",
    "apiserver-forwarder",
    "kube-controller-manager",
    "kube-scheduler",
    "coredns",
    "kwok",
    "vc-controller-manager",
    "vc-scheduler",
)

PORT_NAMES = (
    "etcd-client",
    "etcd-peer",
    "kube-apiserver",
    "apiserver-for-pods",
    "kube-controller-manager",
    "kube-scheduler",
    "coredns",
    "coredns-health",
    "coredns-ready",
    "kwok",
    "vc-scheduler-healthz",
    "vc-scheduler-metrics",
    "vc-controller-manager-healthz",
    "vc-controller-manager-metrics",
)

# Which ports each component binds (re-picked together when a start hits "address already in use").
COMPONENT_PORTS: dict[str, tuple[str, ...]] = {
    "etcd": ("etcd-client", "etcd-peer"),
    "kube-apiserver": ("kube-apiserver",),
    "apiserver-forwarder": ("apiserver-for-pods",),
    "kube-controller-manager": ("kube-controller-manager",),
    "kube-scheduler": ("kube-scheduler",),
    "coredns": ("coredns", "coredns-health", "coredns-ready"),
    "kwok": ("kwok",),
    "vc-scheduler": ("vc-scheduler-healthz", "vc-scheduler-metrics"),
    "vc-controller-manager": ("vc-controller-manager-healthz", "vc-controller-manager-metrics"),
}


@dataclass
class Layout:
    """Everything a command line refers to: binaries, files in the run directory, ports."""

    workdir: Path
    binaries: dict[str, Path]
    pki: ClusterPKI
    admin_kubeconfig: Path
    stages_file: Path
    scheduler_conf: Path
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in PORT_NAMES})
    watch_cache: bool = True
    audit_log: Path | None = None
    """Where the apiserver writes an audit log of every write (Metadata level), or None (the default): off."""
    pod_host: str | None = None
    """The pod network's host address (listeners for pods bind there), or None: the rig has no pod network."""
    volcano_jobs: bool = False
    """Whether vc-controller-manager also runs its job controller (batch.volcano.sh Jobs)."""
    kube_jobs: bool = False
    """Whether kube-controller-manager also runs its Job controller (batch/v1 Jobs)."""

    @property
    def coredns_kubeconfig(self) -> Path:
        """CoreDNS's credentials (user `system:coredns`), written by the Cluster before CoreDNS starts."""
        return self.workdir / "coredns.kubeconfig"

    @property
    def kwok_kubeconfig(self) -> Path:
        """kwok's credentials (its own user, see :mod:`e2e.cluster.kwok`), written before kwok starts."""
        return self.workdir / "kwok.kubeconfig"

    def repick(self, component: str) -> None:
        """Fresh ports for one component."""
        for name in COMPONENT_PORTS[component]:
            self.ports[name] = free_port()

    @property
    def etcd_url(self) -> str:
        """etcd client URL."""
        return f"http://{HOST}:{self.ports['etcd-client']}"

    @property
    def server(self) -> str:
        """apiserver URL."""
        return f"https://{HOST}:{self.ports['kube-apiserver']}"

    def url(self, port_name: str) -> str:
        """Plain-HTTP loopback URL of a port."""
        return f"http://{HOST}:{self.ports[port_name]}"


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
"""
"""Audit writes only (one ResponseComplete entry each, no bodies): what benchmarks count."""


def etcd(lay: Layout) -> list[str]:
    """etcd 3.6, single member, no fsync (test data only)."""
    peer = f"http://{HOST}:{lay.ports['etcd-peer']}"
    return [
        str(lay.binaries["etcd"]),
        "--name=rig",
        f"--data-dir={lay.workdir / 'etcd-data'}",
        f"--listen-client-urls={lay.etcd_url}",
        f"--advertise-client-urls={lay.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=rig={peer}",
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def kube_apiserver(lay: Layout) -> list[str]:
    """kube-apiserver with RBAC, client-certificate auth and the rig's service-account keys."""
    pki = lay.pki
    argv = [
        str(lay.binaries["kube-apiserver"]),
        f"--etcd-servers={lay.etcd_url}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={lay.ports['kube-apiserver']}",
        f"--cert-dir={pki.directory}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.client_ca}",
        f"--requestheader-client-ca-file={pki.front_proxy_ca}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--service-account-issuer={lay.server}",
        f"--service-account-key-file={pki.sa_public_key}",
        f"--service-account-signing-key-file={pki.sa_private_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
        # The kubernetes Service would get a loopback endpoint, which Endpoints validation rejects.
        "--endpoint-reconciler-type=none",
        "--v=1",
    ]
    if not lay.watch_cache:
        argv.append("--watch-cache=false")
    if lay.audit_log is not None:
        policy = lay.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        argv += [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={lay.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
        ]
    return argv


def _kube_component(lay: Layout, name: str, cert_dir: str) -> list[str]:
    """What KCM and kube-scheduler share: the admin kubeconfig for API access and delegated auth, a secure
    port on loopback, no leader election, the rig's client rate limits."""
    kc = str(lay.admin_kubeconfig)
    return [
        str(lay.binaries[name]),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        f"--bind-address={HOST}",
        f"--secure-port={lay.ports[name]}",
        f"--cert-dir={lay.workdir / cert_dir}",
        "--leader-elect=false",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--v=1",
    ]


def kube_controller_manager(lay: Layout) -> list[str]:
    """KCM with only the controllers the tests need (and its Job controller with `kube_jobs`)."""
    controllers = (*KCM_CONTROLLERS, "job-controller") if lay.kube_jobs else KCM_CONTROLLERS
    return [
        *_kube_component(lay, "kube-controller-manager", "kcm-certs"),
        f"--controllers={','.join(controllers)}",
        *(["--concurrent-job-syncs=16"] if lay.kube_jobs else []),  # as many as every operator has
        f"--service-account-private-key-file={lay.pki.sa_private_key}",
        f"--root-ca-file={lay.pki.serving_ca}",
        "--node-monitor-period=2s",
        "--node-monitor-grace-period=40s",
        "--concurrent-gc-syncs=10",
    ]


def kube_scheduler(lay: Layout) -> list[str]:
    """The default scheduler, for pods that do not name Volcano (e.g. the operator's own Deployment)."""
    return _kube_component(lay, "kube-scheduler", "scheduler-certs")


def apiserver_forwarder(lay: Layout) -> list[str]:
    """The apiserver for pods: pod network host address -> the apiserver's loopback port (see forward.py)."""
    if lay.pod_host is None:
        raise RuntimeError("the apiserver forwarder needs the pod network's host address; the rig has none")
    return [
        sys.executable,
        str(FORWARDER),
        f"--listen={lay.pod_host}:{lay.ports['apiserver-for-pods']}",
        f"--to={HOST}:{lay.ports['kube-apiserver']}",
    ]


def coredns(lay: Layout) -> list[str]:
    """CoreDNS for cluster.local on loopback and, with a pod network, on its host address port 53."""
    listeners = [dns.Listener(HOST, lay.ports["coredns"])]
    if lay.pod_host is not None:
        listeners.append(dns.Listener(lay.pod_host, network.DNS_PORT))
    text = dns.corefile(
        listeners,
        str(lay.coredns_kubeconfig),
        health=dns.Listener(HOST, lay.ports["coredns-health"]),
        ready=dns.Listener(HOST, lay.ports["coredns-ready"]),
    )
    corefile = lay.workdir / "Corefile"
    corefile.write_text(text)
    return [str(lay.binaries["coredns"]), "-conf", str(corefile)]


def kwok(lay: Layout) -> list[str]:
    """kwok managing the fake nodes (annotated kwok.x-k8s.io/node=fake), pod IPs from POD_CIDR, health server
    on loopback."""
    return [
        str(lay.binaries["kwok"]),
        f"--kubeconfig={lay.kwok_kubeconfig}",
        f"--config={lay.stages_file}",
        # Only the fake nodes: process nodes (annotated pyroclast.dev/process-node) run their own kubelet.
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={POD_CIDR}",
        f"--node-ip={HOST}",
        "--node-lease-duration-seconds=40",
        f"--server-address={HOST}:{lay.ports['kwok']}",
    ]


def vc_controller_manager(lay: Layout) -> list[str]:
    """Volcano controller manager: queue controller (queues become Open) and pg-controller; with
    `volcano_jobs` also the job controller, as many sync threads as the benchmarks give every operator."""
    controllers = (*volcano.CONTROLLERS, volcano.JOB_CONTROLLER) if lay.volcano_jobs else volcano.CONTROLLERS
    threads = [f"--worker-threads={volcano.JOB_WORKER_THREADS}"] if lay.volcano_jobs else []
    return [
        str(lay.binaries["vc-controller-manager"]),
        f"--kubeconfig={lay.admin_kubeconfig}",
        "--leader-elect=false",
        f"--controllers={','.join(controllers)}",
        *threads,
        "--scheduler-name=volcano",
        "--enable-healthz=true",
        f"--healthz-address={HOST}:{lay.ports['vc-controller-manager-healthz']}",
        f"--listen-address={HOST}:{lay.ports['vc-controller-manager-metrics']}",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "-v=2",
    ]


def vc_scheduler(lay: Layout) -> list[str]:
    """Volcano scheduler with the rig's configuration (preempt and reclaim on)."""
    return [
        str(lay.binaries["vc-scheduler"]),
        f"--kubeconfig={lay.admin_kubeconfig}",
        f"--scheduler-conf={lay.scheduler_conf}",
        "--scheduler-name=volcano",
        "--leader-elect=false",
        "--schedule-period=1s",
        "--default-queue=default",
        "--enable-healthz=true",
        f"--healthz-address={HOST}:{lay.ports['vc-scheduler-healthz']}",
        f"--listen-address={HOST}:{lay.ports['vc-scheduler-metrics']}",
        f"--cache-dump-dir={lay.workdir}",
        "-v=3",
    ]


ARGV = {
    "etcd": etcd,
    "kube-apiserver": kube_apiserver,
    "apiserver-forwarder": apiserver_forwarder,
    "kube-controller-manager": kube_controller_manager,
    "kube-scheduler": kube_scheduler,
    "coredns": coredns,
    "kwok": kwok,
    "vc-controller-manager": vc_controller_manager,
    "vc-scheduler": vc_scheduler,
}
