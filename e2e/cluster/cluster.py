"""The Cluster: etcd, kube-apiserver, kube-controller-manager, CoreDNS, kwok and Volcano as processes."""

from __future__ import annotations

import atexit
import base64
import contextlib
import logging
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from e2e.cluster import dns, flags, kwok, modules, network, stages, volcano
from e2e.cluster.api import Api, WaitTimeoutError, ssl_context, wait_for
from e2e.cluster.binaries import find_all
from e2e.cluster.kubeconfig import write_kubeconfig
from e2e.cluster.network import NetworkUnavailableError, PodNetwork
from e2e.cluster.nodes import node_manifest, node_ready
from e2e.cluster.pki import CertPair, ClusterPKI
from e2e.cluster.ports import HOST
from e2e.cluster.process import Component, ComponentStartError, PortInUseError, tail_file

if TYPE_CHECKING:
    from e2e.cluster.process_nodes import ProcessNodes

log = logging.getLogger(__name__)

COMPONENTS = flags.COMPONENT_ORDER
PORT_RETRIES = 3
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
QUEUE_PATH = "/apis/scheduling.volcano.sh/v1beta1/queues"
RBAC_PATH = "/apis/rbac.authorization.k8s.io/v1"


WATCH_CACHE_NOTE = """\
With the apiserver's watch cache on (the rig's default, as in production) a restarted apiserver answers 410
"too old resource version" to a watch from a resourceVersion before the restart (clients relist), and
compaction alone does not expire resourceVersions the cache still holds; a list at an exact resourceVersion
older than the cache's window is read from etcd, so it answers 410 once `compact_etcd()` passed it. With it
off (`Cluster(watch_cache=False)`) watches and lists are served by etcd: a watch resumes from any
resourceVersion etcd still holds, also across an apiserver restart, and compaction makes every older one
answer 410."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; the message includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


class Cluster:
    """A local Kubernetes + Volcano control plane with kwok nodes, all on 127.0.0.1.

    Usage: `with Cluster() as c: c.kubectl("get", "nodes")`. See the package docstring for the kwok stages.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        start_timeout: float = 180.0,
        watch_cache: bool = True,
        audit: bool = False,
        pod_network: bool | None = None,
        volcano_jobs: bool = False,
        kube_jobs: bool = False,
    ) -> None:
        """`watch_cache` False serves watches and lists from etcd (see `WATCH_CACHE_NOTE`).

        `audit` (off by default) makes the apiserver log every write to :attr:`audit_log` (JSON lines).
        `pod_network` (None: where the machine allows it) creates the pod network (see `network`): CoreDNS and
        the apiserver then also listen on its host address, for pods; False never creates one, True fails the
        start with the reason when it cannot be created. `volcano_jobs` also runs Volcano's own job controller
        (batch.volcano.sh Jobs become pods), for the benchmarks that compare the operator with it; off by
        default, so no other controller than the operator's creates worker pods. `kube_jobs` likewise runs
        kube-controller-manager's Job controller (batch/v1 Jobs become pods), for the JobSet peer."""
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="pyroclast-rig-"))
        self.start_timeout = start_timeout
        self.watch_cache = watch_cache
        self.want_pod_network = pod_network
        self.volcano_jobs = volcano_jobs
        self.kube_jobs = kube_jobs
        self.pod_network: PodNetwork | None = None
        self.pod_network_unavailable: str | None = None
        """Why the rig has no pod network (None while it has one or before start)."""
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.audit_log: Path | None = self.workdir / "logs" / "audit.log" if audit else None
        self.server = ""
        self.timings: dict[str, float] = {}
        self.ready_seconds: float | None = None
        self._layout: flags.Layout | None = None
        self._admin: CertPair | None = None
        self._api: Api | None = None
        self._components: dict[str, Component] = {}
        self._lock = threading.RLock()
        self._stopped = False
        self._process_nodes: ProcessNodes | None = None

    # ----------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and wait until the cluster is ready; on any failure stop what started."""
        atexit.register(self.stop)
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - t0
        log.info("cluster ready in %.1f s at %s (workdir %s)", self.ready_seconds, self.server, self.workdir)

    def _start(self) -> None:
        t = time.monotonic()
        binaries = find_all()
        kwok_dir = modules.kwok_dir()
        volcano_dir = modules.volcano_dir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        pod_host = self._prepare_pod_network()
        pod_ips = [pod_host] if pod_host else []
        pki = ClusterPKI.create(self.workdir / "pki", flags.SERVICE_IP, extra_ips=pod_ips)
        self._admin = pki.client_cert("admin", ["system:masters"])
        self._layout = flags.Layout(
            workdir=self.workdir,
            binaries=binaries,
            pki=pki,
            admin_kubeconfig=self.kubeconfig,
            stages_file=stages.write_stages(kwok_dir, self.workdir / "kwok-stages.yaml"),
            scheduler_conf=volcano.write_scheduler_conf(self.workdir / "volcano-scheduler.conf"),
            watch_cache=self.watch_cache,
            audit_log=self.audit_log,
            pod_host=pod_host,
            volcano_jobs=self.volcano_jobs,
            kube_jobs=self.kube_jobs,
        )
        self._mark("prepare", t)

        self._bring_up("etcd")
        self._bring_up("kube-apiserver")
        api = self.api
        wait_for("namespace default", lambda: api.get("/api/v1/namespaces/default"), 30)
        self._mark("kube-apiserver ready", t)

        crds = volcano.crd_documents(volcano_dir)
        for crd in crds:
            api.create(CRD_PATH, crd, exist_ok=True)
        self._write_coredns_credentials()
        self._write_kwok_credentials()
        launched = ["kube-controller-manager", "kube-scheduler", "coredns", "kwok"]
        if pod_host is not None:
            launched.insert(0, "apiserver-forwarder")
        for name in launched:
            self._launch(name)
        for crd in crds:
            name = crd["metadata"]["name"]
            wait_for(f"CRD {name} established", lambda n=name: self._crd_established(n), 60)
        self._mark("CRDs established", t)
        self._launch("vc-controller-manager")
        self._launch("vc-scheduler")
        for name in (*launched, "vc-controller-manager", "vc-scheduler"):
            self._await(name)
        self._mark("components healthy", t)
        wait_for("queue default Open", lambda: self.queue_state("default") == "Open", 90)
        self._mark("queue default Open", t)

    def _mark(self, step: str, since: float) -> None:
        self.timings[step] = round(time.monotonic() - since, 2)

    # ---------------------------------------------------------------------------- pod network, DNS

    def _prepare_pod_network(self) -> str | None:
        """Create the pod network when wanted and possible; its host address (None: the rig has none)."""
        if self.want_pod_network is False:
            self.pod_network_unavailable = "not requested (Cluster(pod_network=False))"
            return None
        try:
            return self.ensure_pod_network().host_address
        except NetworkUnavailableError as exc:
            if self.want_pod_network:
                raise
            self.pod_network_unavailable = str(exc)
            log.warning("no pod network, so no process nodes: %s", exc)
            return None

    def ensure_pod_network(self) -> PodNetwork:
        """The rig's pod network, created on first call (before the PKI: its host address is in the
        apiserver's certificate). NetworkUnavailableError says why the machine cannot have one."""
        with self._lock:
            if self.pod_network is None:
                if reason := network.namespaces_unavailable():
                    raise NetworkUnavailableError(reason)
                self.pod_network = network.create()
                self.pod_network_unavailable = None
            return self.pod_network

    def _write_coredns_credentials(self) -> None:
        """RBAC for `system:coredns` (what kubeadm grants CoreDNS) and its client-certificate kubeconfig."""
        lay = self._require_layout()
        self.api.create(f"{RBAC_PATH}/clusterroles", dns.CLUSTER_ROLE, exist_ok=True)
        self.api.create(f"{RBAC_PATH}/clusterrolebindings", dns.CLUSTER_ROLE_BINDING, exist_ok=True)
        pair = lay.pki.client_cert(dns.USER)
        write_kubeconfig(lay.coredns_kubeconfig, lay.server, lay.pki.serving_ca, dns.USER, pair)

    def _write_kwok_credentials(self) -> None:
        """kwok's own user and the policy that keeps it from deleting a pod that reuses a name."""
        lay = self._require_layout()
        self.api.create(kwok.POLICY_PATH, kwok.POLICY, exist_ok=True)
        self.api.create(kwok.BINDING_PATH, kwok.BINDING, exist_ok=True)
        pair = lay.pki.client_cert(kwok.USER, kwok.GROUPS)
        write_kubeconfig(lay.kwok_kubeconfig, lay.server, lay.pki.serving_ca, kwok.USER, pair)

    @property
    def pod_host(self) -> str | None:
        """The pod network's host address: pods' gateway, where CoreDNS (port 53) and the apiserver forwarder
        listen for them; None when the rig has no pod network."""
        return self._require_layout().pod_host

    @property
    def pod_apiserver_port(self) -> int | None:
        """The port pods reach the apiserver on at `pod_host` (KUBERNETES_SERVICE_PORT); None without a pod
        network."""
        lay = self._require_layout()
        return lay.ports["apiserver-for-pods"] if lay.pod_host is not None else None

    @property
    def dns_address(self) -> tuple[str, int]:
        """Where the host side asks cluster DNS: CoreDNS on 127.0.0.1 and a free port."""
        return HOST, self._require_layout().ports["coredns"]

    def stop(self) -> None:
        """Stop every component (reverse order) and drop etcd's data; logs stay in workdir."""
        with self._lock:
            if self._process_nodes is not None:  # their pods' processes and namespaces go with them
                try:
                    self._process_nodes.stop_all()
                except Exception:
                    log.exception("stopping process nodes")
            for name in reversed(COMPONENTS):
                comp = self._components.get(name)
                if comp is not None:
                    try:
                        comp.stop()
                    except Exception:
                        log.exception("stopping %s", name)
            if self._api is not None:
                self._api.close()
                self._api = None
            if self.pod_network is not None:
                try:
                    network.destroy(self.pod_network)
                except Exception:
                    log.exception("removing the pod network %s", self.pod_network.bridge)
                self.pod_network = None
            shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)
            if self._owns_workdir and not self._components:  # nothing ran, so no logs worth keeping
                shutil.rmtree(self.workdir, ignore_errors=True)
            if not self._stopped and self._components:
                log.info("cluster stopped; logs in %s", self.workdir / "logs")
            self._stopped = True
            atexit.unregister(self.stop)

    # ------------------------------------------------------------------------------- components

    def _component(self, name: str) -> Component:
        if name not in flags.ARGV:
            raise ValueError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
        lay = self._require_layout()
        comp = self._components.get(name)
        argv = flags.ARGV[name](lay)
        if comp is None:
            comp = Component(
                name=name,
                argv=argv,
                log_path=self.workdir / "logs" / f"{name}.log",
                healthy=self._probe(name),
                start_timeout=self.start_timeout,
                # Open watches keep the apiserver's HTTP shutdown waiting; a restart need not be graceful.
                stop_timeout=5.0 if name == "kube-apiserver" else 15.0,
            )
            self._components[name] = comp
        else:
            comp.argv = argv
        return comp

    def _probe(self, name: str) -> Callable[[], bool]:
        lay = self._require_layout()

        def http_ok(port_name: str, path: str = "/healthz") -> Callable[[], bool]:
            return lambda: httpx.get(lay.url(port_name) + path, timeout=2).status_code == 200

        match name:
            case "etcd":
                return lambda: httpx.get(lay.etcd_url + "/health", timeout=2).json().get("health") == "true"
            case "kube-apiserver":
                return lambda: self.api.healthy("/readyz")
            case "kube-controller-manager" | "kube-scheduler":
                url = f"https://127.0.0.1:{lay.ports[name]}/healthz"
                return lambda: httpx.get(url, verify=False, timeout=2).status_code == 200
            case "kwok":
                return http_ok("kwok")
            case "coredns":
                return http_ok("coredns-ready", "/ready")
            case "apiserver-forwarder":
                # Through the forwarder with TLS verified against the host address: proves the SAN as well.
                url = f"https://{lay.pod_host}:{lay.ports['apiserver-for-pods']}/readyz"
                verify = ssl_context(lay.pki.serving_ca, None)
                return lambda: httpx.get(url, verify=verify, timeout=2).status_code == 200
            case "vc-scheduler":
                return http_ok("vc-scheduler-healthz")
            case _:
                return http_ok("vc-controller-manager-healthz")

    def _launch(self, name: str) -> None:
        comp = self._component(name)
        comp.launch()
        if self.pod_network is not None and comp.pid is not None:
            # Stale-rig cleanup kills it should this process die without stopping it (see network).
            self.pod_network.record_pid(comp.pid)

    def _await(self, name: str) -> None:
        """Wait for a launched component; on a port clash pick new ports and relaunch (first start only)."""
        for attempt in range(PORT_RETRIES + 1):
            comp = self._component(name)
            try:
                comp.wait_healthy()
                return
            except PortInUseError:
                if attempt == PORT_RETRIES:
                    raise
                log.warning("%s: port taken, retrying with fresh ports", name)
                comp.stop()
                self._require_layout().repick(name)
                self._components.pop(name, None)
                if name == "kube-apiserver":
                    self._reset_api()
                self._launch(name)

    def _bring_up(self, name: str) -> None:
        self._launch(name)
        self._await(name)

    def stop_component(self, name: str) -> None:
        """Stop one component (SIGTERM, then SIGKILL)."""
        with self._lock:
            if name == "kube-apiserver":
                self._reset_api()
            self._component(name).stop()

    def start_component(self, name: str) -> None:
        """Start one stopped component on its previous ports and wait until it is healthy."""
        with self._lock:
            self._launch(name)
            comp = self._component(name)
            comp.wait_healthy()
            if name == "kube-apiserver":
                self._reset_api()

    def restart(self, name: str) -> None:
        """Stop and start one component."""
        with self._lock:
            self.stop_component(name)
            self.start_component(name)

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a component's log."""
        return tail_file(self.workdir / "logs" / f"{name}.log", lines)

    def component_names(self) -> list[str]:
        """Components that were started at least once."""
        return [n for n in COMPONENTS if n in self._components]

    def pid(self, name: str) -> int | None:
        """PID of a running component."""
        comp = self._components.get(name)
        return comp.pid if comp is not None else None

    # ------------------------------------------------------------------------------- API access

    def _require_layout(self) -> flags.Layout:
        if self._layout is None:
            raise RuntimeError("cluster not started")
        return self._layout

    @property
    def api(self) -> Api:
        """Admin REST client (system:masters)."""
        lay = self._require_layout()
        if self._api is None:
            if self._admin is None:
                raise RuntimeError("cluster not started")
            self.server = lay.server
            write_kubeconfig(self.kubeconfig, self.server, lay.pki.serving_ca, "admin", self._admin)
            self._api = Api(self.server, lay.pki.serving_ca, self._admin)
        return self._api

    def new_api(self) -> Api:
        """A separate admin client (own connection pool), e.g. for a watch in another thread."""
        if self._admin is None:
            raise RuntimeError("cluster not started")
        return Api(self._require_layout().server, self.ca_file, self._admin)

    def _reset_api(self) -> None:
        if self._api is not None:
            self._api.close()
        self._api = None

    @property
    def ca_file(self) -> Path:
        """The serving CA certificate (to verify the apiserver)."""
        return self._require_layout().pki.serving_ca

    @property
    def kubectl_binary(self) -> Path:
        """Path of the kubectl built with the apiserver."""
        return self._require_layout().binaries["kubectl"]

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the rig's kubectl (built with the apiserver) against this cluster."""
        argv = [str(self.kubectl_binary), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def add_user(self, name: str, groups: Sequence[str] = ()) -> Path:
        """Kubeconfig for a client-certificate user (CN=name, O=groups); without groups RBAC applies fully."""
        lay = self._require_layout()
        pair = lay.pki.client_cert(name, groups)
        safe = pair.cert.stem.removeprefix("user-")
        self.api  # noqa: B018 - ensures self.server is set
        return write_kubeconfig(
            self.workdir / "users" / f"{safe}.kubeconfig", self.server, lay.pki.serving_ca, name, pair
        )

    def create_namespace(
        self, name: str, *, labels: Mapping[str, str] | None = None, timeout: float = 90.0
    ) -> None:
        """Create a namespace and wait for its `default` ServiceAccount: ServiceAccount admission refuses pods
        until KCM has made it, as in any cluster (later on a loaded machine, or while KCM relists after an
        etcd compaction)."""
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = dict(labels)
        self.api.create("/api/v1/namespaces", {"metadata": metadata})
        wait_for(
            f"ServiceAccount default in namespace {name}",
            lambda: self.api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
            timeout,
        )

    def queue_state(self, name: str) -> str | None:
        """status.state of a Volcano queue."""
        queue = self.api.get(f"{QUEUE_PATH}/{name}")
        return None if queue is None else (queue.get("status") or {}).get("state")

    def _crd_established(self, name: str) -> bool:
        crd = self.api.get(f"{CRD_PATH}/{name}")
        conditions: list[dict[str, Any]] = ((crd or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    # ------------------------------------------------------------------------------------ nodes

    def create_nodes(
        self,
        count: int,
        *,
        cpu: str = "8",
        memory: str = "64Gi",
        gpus: int = 0,
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
        prefix: str = "node",
        timeout: float = 60.0,
    ) -> list[str]:
        """Create kwok nodes and wait until each is Ready with no NoSchedule/NoExecute taint."""
        token = secrets.token_hex(3)
        names = [f"{prefix}-{token}-{i}" for i in range(count)]
        for name in names:
            manifest = node_manifest(name, cpu=cpu, memory=memory, gpus=gpus, pods=pods, labels=labels)
            self.api.create("/api/v1/nodes", manifest)
        for name in names:
            try:
                wait_for(
                    f"node {name} Ready and untainted",
                    lambda n=name: node_ready(self.api.get(f"/api/v1/nodes/{n}") or {}),
                    timeout,
                )
            except WaitTimeoutError as exc:
                raise WaitTimeoutError(f"{exc}\nkwok log:\n{self.log_tail('kwok', 20)}") from None
        return names

    @property
    def process_nodes(self) -> ProcessNodes:
        """The rig's process nodes (kubelet stand-ins running pods as local processes)."""
        from e2e.cluster.process_nodes import ProcessNodes

        with self._lock:
            if self._process_nodes is None:
                self._process_nodes = ProcessNodes(self)
            return self._process_nodes

    def create_process_nodes(
        self,
        count: int,
        *,
        cpu: str = "8",
        memory: str = "64Gi",
        gpus: int = 0,
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
        prefix: str = "proc",
        timeout: float = 60.0,
    ) -> list[str]:
        """Start process nodes (see `e2e.cluster.kubelet`) and wait until each is Ready; the pod network must
        exist (NetworkUnavailableError says why it cannot)."""
        return self.process_nodes.create(
            count, cpu=cpu, memory=memory, gpus=gpus, pods=pods, labels=labels, prefix=prefix, timeout=timeout
        )

    def delete_nodes(self, names: Sequence[str], *, timeout: float = 60.0) -> None:
        """Delete nodes and wait until they are gone."""
        for name in names:
            self.api.delete(f"/api/v1/nodes/{name}")
        for name in names:
            wait_for(
                f"node {name} deleted", lambda n=name: self.api.get(f"/api/v1/nodes/{n}") is None, timeout
            )

    # ------------------------------------------------------------------------------------- etcd

    def compact_etcd(self) -> int:
        """Compact etcd to its current revision (physically) and return it; older RVs then get 410.

        Holds for reads served by etcd: with the watch cache on (the default), those older than its window
        (see WATCH_CACHE_NOTE).
        """
        url = self._require_layout().etcd_url
        key = base64.b64encode(b"/").decode()
        header = httpx.post(f"{url}/v3/kv/range", json={"key": key, "count_only": True}, timeout=10)
        header.raise_for_status()
        revision = int(header.json()["header"]["revision"])
        resp = httpx.post(
            f"{url}/v3/kv/compaction", json={"revision": revision, "physical": True}, timeout=30
        )
        if resp.status_code != 200 and "compacted" not in resp.text:
            resp.raise_for_status()
        return revision


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit (main thread only) so cleanup and atexit hooks run."""
    if threading.current_thread() is not threading.main_thread():
        return

    def _exit(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _exit)


__all__ = ["Cluster", "ComponentStartError", "KubectlError", "install_signal_handlers"]
