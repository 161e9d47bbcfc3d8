"""One pod on a process node, from admission to its final status: the kubelet's pod worker.

Pending (volumes, network, env) -> Running (podIP, containers running, Ready from readiness probes) ->
containers end with their real exit code, reason and termination message -> restarted or not per
restartPolicy -> phase Succeeded/Failed. Deletion follows the kubelet's graceful path: on deletionTimestamp
SIGTERM to each container's main process, SIGKILL after the pod's grace period, the terminal status, then
the final DELETE with gracePeriodSeconds 0 and the pod's UID as precondition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2e.cluster.kubelet import container as runtime
from e2e.cluster.kubelet import logs, probes, volumes
from e2e.cluster.kubelet.env import EnvError, command_line, container_env
from e2e.cluster.kubelet.images import ImageConfig, image_config
from e2e.cluster.kubelet.node import now
from e2e.cluster.network import MEMORY_ROOT

if TYPE_CHECKING:
    from e2e.cluster.kubelet.manager import PodManager

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MESSAGE_LIMIT = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048
BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
DEFAULT_GRACE = 30


@dataclass
class ContainerState:
    """What the status reports for one container."""

    spec: JSON
    restarts: int = 0
    run: runtime.ContainerProcess | None = None
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict[str, Any])
    ready: bool = False
    done: bool = False
    term_file: Path | None = None

    @property
    def name(self) -> str:
        """The container's name."""
        return str(self.spec["name"])

    def status(self, image: str) -> JSON:
        """containerStatuses[] entry; states name every key (null = remove) so a strategic merge patch
        replaces them instead of merging `running` and `terminated` together."""
        started = "running" in self.state
        blank: JSON = {"waiting": None, "running": None, "terminated": None}
        return {
            "name": self.name,
            "image": image,
            "imageID": "",
            "containerID": f"pyroclast-rig://{self.run.proc.pid}" if self.run else "",
            "ready": self.ready,
            "started": started,
            "restartCount": self.restarts,
            "state": {**blank, **self.state},
            "lastState": {**blank, **self.last_state},
        }


def _message(path: Path, policy: str, exit_code: int, log_file: Path) -> str:
    text = ""
    with contextlib.suppress(OSError):
        text = path.read_bytes()[:MESSAGE_LIMIT].decode("utf-8", "replace")
    if not text and policy == "FallbackToLogsOnError" and exit_code != 0:
        with contextlib.suppress(OSError):
            lines, _ = logs.tail(log_file, FALLBACK_LINES)
            data = b"".join(logs.render(raw, False) for raw in lines)
            text = data[-FALLBACK_BYTES:].decode("utf-8", "replace")
    return text


class PodWorker:
    """Runs one pod; `update` feeds it newer versions of the object (e.g. the deletionTimestamp)."""

    def __init__(self, manager: PodManager, pod: JSON) -> None:
        self.m = manager
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.fetch = manager.fetcher(meta["namespace"])
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir = manager.root / "pods" / self.uid
        self.memory_dir = MEMORY_ROOT / manager.network.cluster_id / self.uid
        self.ip: str | None = None
        self.netns: str | None = None
        self.started_at: str | None = None
        self.containers = [ContainerState(spec=c) for c in pod["spec"]["containers"]]
        self.vols = volumes.PodVolumes()
        self.phase = "Pending"
        self.message: str | None = None
        self.reason: str | None = None
        self.deleting = asyncio.Event()
        self.removed = False
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._probe_tasks: list[asyncio.Task[None]] = []
        self._status_lock = asyncio.Lock()

    @property
    def path(self) -> str:
        """The pod's API path."""
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"

    # ------------------------------------------------------------------------------ inputs

    def update(self, pod: JSON) -> None:
        """A newer version of the pod from the watch."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def gone(self) -> None:
        """The pod object was removed (e.g. force-deleted): stop at once."""
        self.removed = True
        self.pod["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        self.pod["metadata"]["deletionGracePeriodSeconds"] = 0
        self.deleting.set()

    def container(self, name: str) -> ContainerState | None:
        """A container by name."""
        return next((c for c in self.containers if c.name == name), None)

    # ------------------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """The pod's whole life on this node."""
        try:
            await self._run()
        except Exception:
            log.exception("pod %s/%s", self.namespace, self.name)
        finally:
            self._teardown()
            self.m.forget(self)

    async def _run(self) -> None:
        if self.deleting.is_set():
            await self._finish_deleted()
            return
        self.started_at = now()
        if not await self._setup():
            await self._finish_deleted()
            return
        restart_policy = self.pod["spec"].get("restartPolicy") or "Always"
        for c in self.containers:
            await self._start(c)
        self.phase = "Running"
        await self.post_status()
        backoff: dict[str, float] = {}
        while True:
            waiters = {asyncio.create_task(c.run.wait()): c for c in self.containers if c.run and not c.done}
            deleting = asyncio.create_task(self.deleting.wait())
            done, _ = await asyncio.wait([*waiters, deleting], return_when=asyncio.FIRST_COMPLETED)
            for t in waiters:
                if t not in done:
                    t.cancel()
            if deleting in done:
                await self._kill_all()
                await self._finish_deleted()
                return
            deleting.cancel()
            for t in done:
                c = waiters[t]
                self._record_exit(c)
                again = restart_policy == "Always" or (
                    restart_policy == "OnFailure" and (c.run.exit_code if c.run else 1) != 0
                )
                c.done = not again
                if again:
                    c.last_state = {"terminated": c.state["terminated"]}
            if all(c.done for c in self.containers):
                codes = [c.run.exit_code if c.run else 1 for c in self.containers]
                self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
                await self.post_status()
                return
            await self.post_status()
            for c in self.containers:
                if not c.done and c.run is not None and c.run.exit_code is not None:
                    delay = backoff.get(c.name, 0.0)
                    backoff[c.name] = min(BACKOFF_MAX, max(BACKOFF_START, delay * 2))
                    if delay:
                        c.state = {
                            "waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {delay:.0f}s"}
                        }
                        await self.post_status()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.deleting.wait(), delay)
                        if self.deleting.is_set():
                            break
                    c.restarts += 1
                    await self._start(c)
            await self.post_status()

    async def _setup(self) -> bool:
        """Volumes and network; a config error is reported (the kubelet's waiting reason) and retried."""
        while not self.deleting.is_set():
            try:
                self.vols = await volumes.prepare(
                    self.pod, self.dir, self.memory_dir, self.m.claims_root, self.m.client, self.fetch,
                    self.m.allocatable,
                )  # fmt: skip
                if self.ip is None:
                    self.ip = self.m.ips.allocate()
                    self.netns = await asyncio.to_thread(self.m.network.add_pod, self.uid, self.ip)
                return True
            except EnvError as exc:
                for c in self.containers:
                    c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                await self.post_status()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.deleting.wait(), 5)
        return False

    def _files(self) -> dict[str, str]:
        spec = self.pod["spec"]
        hostname = spec.get("hostname") or self.name
        domain = self.m.cluster_domain
        hosts = [
            "# Kubernetes-managed hosts file.",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
        ]
        hosts += [
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
        ]
        if spec.get("subdomain"):
            fqdn = f"{hostname}.{spec['subdomain']}.{self.namespace}.svc.{domain}"
            hosts.append(f"{self.ip}\t{fqdn}\t{hostname}")
        else:
            hosts.append(f"{self.ip}\t{hostname}")
        for alias in spec.get("hostAliases") or []:
            hosts.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []))
        search = f"{self.namespace}.svc.{domain} svc.{domain} {domain}"
        resolv = f"search {search}\nnameserver {self.m.network.dns_server}\noptions ndots:5\n"
        return {
            "/etc/hosts": "\n".join(hosts) + "\n",
            "/etc/resolv.conf": resolv,
            "/etc/hostname": hostname + "\n",
        }

    async def _start(self, c: ContainerState) -> None:
        spec = c.spec
        try:
            env = await container_env(
                self.pod_with_ips(), spec, self.fetch, self.m.allocatable, self.m.service_env
            )
            image = image_config(str(spec.get("image") or ""), Path(self.m.source))
            command = command_line(spec, env, image)
        except EnvError as exc:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            c.run = None
            c.done = True
            return
        venv_bin = str(Path(self.m.python).parent)
        env["PATH"] = (
            f"{venv_bin}:{env.get('PATH') or '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'}"
        )
        env.setdefault("PYTHONPATH", self.m.source)
        env.setdefault("HOSTNAME", self.pod["spec"].get("hostname") or self.name)
        user = self._user(spec, image)
        env.setdefault("HOME", "/root" if user is None or user[0] == 0 else "/")
        term_host = self.dir / "containers" / c.name / f"termination-log-{c.restarts}"
        term_host.parent.mkdir(parents=True, exist_ok=True)
        term_host.write_bytes(b"")
        term_host.chmod(0o666)  # whatever user the container runs as writes it
        mounts = [
            {"source": str(term_host), "target": spec.get("terminationMessagePath") or "/dev/termination-log"}
        ]
        for m in spec.get("volumeMounts") or []:
            source = self.vols.paths.get(m["name"])
            if source is None:
                continue
            if m.get("subPath"):
                source = source / m["subPath"]
                source.mkdir(parents=True, exist_ok=True)
            mounts.append(
                {"source": str(source), "target": m["mountPath"], "readonly": bool(m.get("readOnly"))}
            )
        sandbox = {
            "hostname": self.pod["spec"].get("hostname") or self.name,
            "scratch": str(self.dir / "containers" / c.name / "scratch"),
            "files": self._files(),
            "mounts": mounts,
            "env": env,
            "command": command,
            "workingDir": spec.get("workingDir") or (image.workdir if image else None),
            "user": user,
            "exposePaths": self.m.expose_paths,
            "readonlyRoot": bool((spec.get("securityContext") or {}).get("readOnlyRootFilesystem")),
        }
        assert self.netns is not None
        c.run = await runtime.start(
            name=c.name,
            restart=c.restarts,
            netns=self.netns,
            python=self.m.python,
            spec=sandbox,
            spec_file=self.dir / "containers" / c.name / f"sandbox-{c.restarts}.json",
            log_file=logs.log_path(self.dir, c.name, c.restarts),
        )
        c.run.started_at = now()
        c.state = {"running": {"startedAt": c.run.started_at}}
        c.ready = "readinessProbe" not in spec
        c.term_file = term_host
        if "readinessProbe" in spec:
            run = c.run

            def report(ready: bool, c: ContainerState = c) -> None:
                c.ready = ready
                self.changed.set()
                asyncio.get_running_loop().create_task(self.post_status())

            assert self.ip is not None
            self._probe_tasks.append(
                asyncio.create_task(
                    probes.run_readiness(spec["readinessProbe"], spec, self.ip, lambda: run.main_pid, report)
                )
            )

    def _user(self, spec: JSON, image: ImageConfig | None) -> list[int] | None:
        """[uid, gid] from the container's, else the pod's securityContext, else the image's numeric USER."""
        pod_ctx: JSON = self.pod["spec"].get("securityContext") or {}
        ctx: JSON = spec.get("securityContext") or {}
        uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
        gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
        if uid is None and image is not None and image.user:
            name, _, group = image.user.partition(":")
            if name.isdigit():
                uid = int(name)
                gid = int(group) if group.isdigit() else gid
        if uid is None:
            return None
        return [int(uid), int(gid if gid is not None else 0)]

    def _record_exit(self, c: ContainerState) -> None:
        run = c.run
        if run is None or run.exit_code is None:
            return
        code = run.exit_code
        assert c.term_file is not None
        message = _message(c.term_file, c.spec.get("terminationMessagePolicy") or "File", code, run.log_file)
        terminated: JSON = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": now(),
            "containerID": f"pyroclast-rig://{run.proc.pid}",
        }
        if code > 128:
            terminated["signal"] = code - 128
        if message:
            terminated["message"] = message
        c.state = {"terminated": terminated}
        c.ready = False

    async def _kill_all(self) -> None:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        running = [
            c
            for c in self.containers
            if c.run is not None and c.run.exit_code is None and c.run.proc.returncode is None
        ]
        for c in running:
            assert c.run is not None
            log.info("killing %s/%s container %s with grace %ss", self.namespace, self.name, c.name, grace)
            c.run.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        if running:
            waits = [c.run.wait() for c in running if c.run is not None]
            try:
                await asyncio.wait_for(asyncio.gather(*waits), max(float(grace), 0.001))
            except TimeoutError:
                for c in running:
                    if c.run is not None and c.run.proc.returncode is None:
                        c.run.signal(signal.SIGKILL)
                await asyncio.gather(*(c.run.wait() for c in running if c.run is not None))
        for c in running:
            self._record_exit(c)

    async def _finish_deleted(self) -> None:
        """Terminal status (if the pod still exists), then the final delete with grace 0 and the UID."""
        if self.removed:
            return
        codes = [
            c.run.exit_code for c in self.containers if c.run is not None and c.run.exit_code is not None
        ]
        if self.phase not in ("Succeeded", "Failed"):
            clean = len(codes) == len(self.containers) and all(code == 0 for code in codes)
            self.phase = "Succeeded" if clean else "Failed"
        for c in self.containers:
            if "terminated" not in c.state:  # never started: the kubelet reports it as unknown
                c.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}
        await self.post_status()
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        with contextlib.suppress(Exception):
            await self.m.client.request("DELETE", self.path, body, ok_missing=True)

    def _teardown(self) -> None:
        for t in self._probe_tasks:
            t.cancel()
        for c in self.containers:
            if c.run is not None and c.run.proc.returncode is None:
                c.run.signal(signal.SIGKILL)
        if self.netns is not None:
            with contextlib.suppress(Exception):
                self.m.network.remove_pod(self.uid)
            self.netns = None
        if self.ip is not None:
            self.m.ips.release(self.ip)
        volumes.remove(self.dir, self.memory_dir)
        for c in self.containers:
            shutil.rmtree(self.dir / "containers" / c.name / "scratch", ignore_errors=True)

    # ------------------------------------------------------------------------------ status

    def pod_with_ips(self) -> JSON:
        """The pod object with the addresses this node gave it (for fieldRefs)."""
        pod = dict(self.pod)
        status = dict(pod.get("status") or {})
        status.update(self._addresses())
        pod["status"] = status
        return pod

    def _addresses(self) -> JSON:
        out: JSON = {"hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}]}
        if self.ip:
            out.update({"podIP": self.ip, "podIPs": [{"ip": self.ip}]})
        return out

    def status(self) -> JSON:
        """The pod status this node reports."""
        stamp = now()
        running = self.phase == "Running"
        all_ready = running and all(c.ready for c in self.containers)
        not_ready = [c.name for c in self.containers if not c.ready]

        def cond(kind: str, ok: bool, reason: str | None = None) -> JSON:
            out: JSON = {
                "type": kind,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": stamp,
            }
            out["reason"] = reason if not ok else None
            out["message"] = (
                f"containers with unready status: [{' '.join(not_ready)}]" if not ok and not_ready else None
            )
            return out

        terminal = self.phase in ("Succeeded", "Failed")
        reason = "PodCompleted" if terminal else "ContainersNotReady"
        status: JSON = {
            "phase": self.phase,
            "conditions": [
                cond("PodReadyToStartContainers", self.netns is not None or terminal),
                cond("Initialized", True),
                cond("ContainersReady", all_ready, reason),
                cond("Ready", all_ready, reason),
            ],
            "containerStatuses": [c.status(c.spec.get("image", "")) for c in self.containers],
            "qosClass": (self.pod.get("status") or {}).get("qosClass", "BestEffort"),
            **self._addresses(),
        }
        if self.started_at:
            status["startTime"] = self.started_at
        return status

    async def post_status(self) -> None:
        """PATCH the status subresource (conditions and containerStatuses merge by key)."""
        if self.removed:
            return
        async with self._status_lock:
            try:
                await self.m.client.strategic_patch(f"{self.path}/status", {"status": self.status()})
            except Exception as exc:
                log.warning("status of %s/%s: %s", self.namespace, self.name, exc)
