"""The Cluster: etcd, kube-apiserver, kube-controller-manager, kwok and Volcano as local processes."""

from __future__ import annotations

import atexit
import base64
import contextlib
import logging
import os
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
from typing import Any

import httpx

from e2e.cluster import flags, modules, stages, volcano
from e2e.cluster.api import Api, WaitTimeoutError, wait_for
from e2e.cluster.binaries import find_all
from e2e.cluster.kubeconfig import write_kubeconfig
from e2e.cluster.nodes import node_manifest, node_ready
from e2e.cluster.pki import CertPair, ClusterPKI
from e2e.cluster.process import Component, ComponentStartError, PortInUseError, tail_file

log = logging.getLogger(__name__)

COMPONENTS = flags.COMPONENT_ORDER
PORT_RETRIES = 3
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
QUEUE_PATH = "/apis/scheduling.volcano.sh/v1beta1/queues"


WATCH_CACHE_NOTE = """\
With the apiserver's watch cache off (the rig's default) watches and lists are served by etcd, so a watch can
resume from any resourceVersion etcd still holds, also across an apiserver restart, and `compact_etcd()` makes
every older one answer 410. With it on (PYROCLAST_RIG_WATCH_CACHE=1, like production) a restarted apiserver
answers 410 "too old resource version" for resourceVersions from before the restart (clients relist), and
compaction alone does not expire resourceVersions the cache still holds."""


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
        watch_cache: bool | None = None,
        audit: bool = False,
    ) -> None:
        """`watch_cache` None reads PYROCLAST_RIG_WATCH_CACHE (default off, see `WATCH_CACHE_NOTE`).

        `audit` (off by default) makes the apiserver log every write to :attr:`audit_log` (JSON lines)."""
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="pyroclast-rig-"))
        self.start_timeout = start_timeout
        if watch_cache is None:
            watch_cache = os.environ.get("PYROCLAST_RIG_WATCH_CACHE", "0") == "1"
        self.watch_cache = watch_cache
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
        pki = ClusterPKI.create(self.workdir / "pki", flags.SERVICE_IP)
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
        self._launch("kube-controller-manager")
        self._launch("kwok")
        for crd in crds:
            name = crd["metadata"]["name"]
            wait_for(f"CRD {name} established", lambda n=name: self._crd_established(n), 60)
        self._mark("CRDs established", t)
        self._launch("vc-controller-manager")
        self._launch("vc-scheduler")
        for name in ("kube-controller-manager", "kwok", "vc-controller-manager", "vc-scheduler"):
            self._await(name)
        self._mark("components healthy", t)
        wait_for("queue default Open", lambda: self.queue_state("default") == "Open", 90)
        self._mark("queue default Open", t)

    def _mark(self, step: str, since: float) -> None:
        self.timings[step] = round(time.monotonic() - since, 2)

    def stop(self) -> None:
        """Stop every component (reverse order) and drop etcd's data; logs stay in workdir."""
        with self._lock:
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
            case "kube-controller-manager":
                url = f"https://127.0.0.1:{lay.ports['kube-controller-manager']}/healthz"
                return lambda: httpx.get(url, verify=False, timeout=2).status_code == 200
            case "kwok":
                return http_ok("kwok")
            case "vc-scheduler":
                return http_ok("vc-scheduler-healthz")
            case _:
                return http_ok("vc-controller-manager-healthz")

    def _launch(self, name: str) -> None:
        self._component(name).launch()

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
            comp = self._component(name)
            comp.start()
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

        Holds for reads served by etcd, i.e. with the watch cache off (the default; see WATCH_CACHE_NOTE).
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
