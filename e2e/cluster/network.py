"""The pod network of one rig: a private Linux bridge, its subnet, per-node pod CIDRs and per-pod netns.

Process nodes (the rig's kubelet stand-in) run every pod in its own network namespace, joined by a veth pair
to a bridge this module creates for one cluster. Pod addresses exist only on that bridge: the bridge's host
address (`.0.1`) is where host-side listeners for pods bind (cluster DNS on port 53, the apiserver forwarder),
each pod's only route is a default route via that address, and nothing is forwarded or NATed off the machine
(ip_forward is never touched). Several rigs may run at once on one machine, so the bridge name and subnet are
unique per rig and chosen under a machine-wide lock, avoiding every address and route already present.

Everything a rig creates is recorded under `/run/pyroclast-rig/<cluster id>/` with the owner's pid and start
time; `create` first removes the leftovers of every rig whose owner is gone (e.g. a SIGKILLed pytest):
recorded process groups are killed, network namespaces and the bridge deleted, the state directory removed.

Layout of one rig's subnet (a /16 from `10.128.0.0/16` .. `10.191.0.0/16`): the bridge holds `10.X.0.1/16`,
node *i* (from 0) hands out pod addresses from `10.X.(i+1).0/24`.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_ROOT = Path(os.environ.get("PYROCLAST_RIG_STATE", "/run/pyroclast-rig"))
NETNS_DIR = Path("/run/netns")
MEMORY_ROOT = Path("/dev/shm/pyroclast-rig")
"""Memory-backed emptyDir volumes of a rig's pods live under MEMORY_ROOT/<cluster id>/ (the host's tmpfs)."""
DNS_PORT = 53
BRIDGE_PREFIX = "pyro"
NETNS_PREFIX = "pyro-"
# Candidate rig subnets: 10.128.0.0/16 .. 10.191.0.0/16 (the rig's Service and kwok CIDRs are elsewhere).
_CANDIDATE_SECOND_OCTETS = range(128, 192)
_RESERVED = (ipaddress.IPv4Network("10.96.0.0/16"), ipaddress.IPv4Network("10.244.0.0/16"))
MAX_NODES = 250


class NetworkUnavailableError(RuntimeError):
    """This machine cannot create the rig's namespaces or bridge (not root, no `ip`/`unshare`, no netns)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def namespaces_unavailable() -> str | None:
    """Why process nodes cannot run here (None when they can): they need root, `ip`, `unshare` and netns."""
    if os.geteuid() != 0:
        return (
            f"process nodes need root (network, mount, UTS and PID namespaces); running as uid {os.geteuid()}"
        )
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"process nodes need the `{tool}` command (iproute2 / util-linux)"
    probe = f"{NETNS_PREFIX}probe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


# ------------------------------------------------------------------------------------------- ownership


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/pid/stat), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str | None) -> bool:
    current = _start_time(pid)
    return current is not None and (start_time is None or current == start_time)


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """Serialise subnet choice and stale cleanup among the rigs of this machine."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with (STATE_ROOT / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------- the network


@dataclass(frozen=True)
class PodNetwork:
    """One rig's bridge and subnet. Serialisable (`to_json`/`from_json`) so kubelet processes can share it."""

    cluster_id: str
    bridge: str
    subnet: ipaddress.IPv4Network
    state_dir: Path

    @property
    def host_address(self) -> str:
        """The bridge's host address: pods' default gateway, where host-side listeners for pods bind."""
        return str(self.subnet.network_address + 1)

    @property
    def dns_server(self) -> str:
        """The nameserver pods use (cluster DNS listens here on port DNS_PORT)."""
        return self.host_address

    @property
    def prefixlen(self) -> int:
        """The prefix length pods put on their address (the whole rig subnet is on-link)."""
        return self.subnet.prefixlen

    def node_cidr(self, index: int) -> ipaddress.IPv4Network:
        """The /24 node `index` (from 0) hands out pod addresses from."""
        if not 0 <= index < MAX_NODES:
            raise ValueError(f"node index {index} out of range 0..{MAX_NODES - 1}")
        base = int(self.subnet.network_address) + (index + 1) * 256
        return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(base)}/24")

    def netns_name(self, pod_uid: str) -> str:
        """The network namespace name of a pod (unique per rig and pod)."""
        return f"{NETNS_PREFIX}{self.cluster_id}-{pod_uid.replace('-', '')[:12]}"

    # state records (so a crashed rig's leftovers can be found and removed)

    def record_pid(self, pid: int) -> None:
        """Remember a process group leader this rig started (killed on teardown / stale cleanup)."""
        d = self.state_dir / "pids"
        d.mkdir(parents=True, exist_ok=True)
        (d / str(pid)).write_text(_start_time(pid) or "")

    def forget_pid(self, pid: int) -> None:
        """The process group is gone."""
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "pids" / str(pid)).unlink()

    def to_json(self) -> str:
        """Serialised form for `from_json`."""
        return json.dumps(
            {
                "cluster_id": self.cluster_id,
                "bridge": self.bridge,
                "subnet": str(self.subnet),
                "state_dir": str(self.state_dir),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PodNetwork:
        """Inverse of `to_json`."""
        d: dict[str, Any] = json.loads(text)
        return cls(
            cluster_id=d["cluster_id"],
            bridge=d["bridge"],
            subnet=ipaddress.IPv4Network(d["subnet"]),
            state_dir=Path(d["state_dir"]),
        )

    # pod network namespaces

    def add_pod(self, pod_uid: str, address: str) -> str:
        """Create the pod's netns: loopback, `eth0` with the address, default route via the host; its name."""
        ns = self.netns_name(pod_uid)
        (self.state_dir / "netns").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "netns" / ns).write_text(address)
        host_end = "v" + secrets.token_hex(5)  # IFNAMSIZ: at most 15 characters
        _ip("netns", "add", ns)
        try:
            _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", host_end, "master", self.bridge, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/{self.prefixlen}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "via", self.host_address, "dev", "eth0")
        except BaseException:
            self.remove_pod(pod_uid)
            raise
        return ns

    def remove_pod(self, pod_uid: str) -> None:
        """Delete the pod's netns (its veth pair goes with it)."""
        ns = self.netns_name(pod_uid)
        _delete_netns(ns)
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "netns" / ns).unlink()


def _delete_netns(ns: str) -> None:
    if (NETNS_DIR / ns).exists():
        proc = _ip("netns", "del", ns, check=False)
        if proc.returncode != 0:
            log.warning("deleting netns %s: %s", ns, proc.stderr.strip())


def _used_networks() -> list[ipaddress.IPv4Network]:
    used: list[ipaddress.IPv4Network] = list(_RESERVED)
    for args in (("-j", "-4", "route", "show", "table", "all"), ("-j", "-4", "addr")):
        proc = _ip(*args, check=False)
        try:
            entries: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
        except json.JSONDecodeError:
            continue
        for e in entries:
            dst = e.get("dst")
            if dst and dst != "default":
                with contextlib.suppress(ValueError):
                    used.append(ipaddress.IPv4Network(dst, strict=False))
            for a in e.get("addr_info") or []:
                with contextlib.suppress(ValueError, KeyError):
                    used.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for other in STATE_ROOT.glob("*/network.json"):  # reserved by a rig still setting up
        with contextlib.suppress(Exception):
            used.append(PodNetwork.from_json(other.read_text()).subnet)
    return used


def _pick_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    candidates = list(_CANDIDATE_SECOND_OCTETS)
    random.shuffle(candidates)
    for octet in candidates:
        net = ipaddress.IPv4Network(f"10.{octet}.0.0/16")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetworkUnavailableError("no free /16 left in 10.128.0.0/10 for the rig's pod network")


def create(cluster_id: str | None = None) -> PodNetwork:
    """Remove stale rigs, then create this rig's bridge on a free subnet, owned by the calling process."""
    cid = cluster_id or secrets.token_hex(3)
    with _machine_lock():
        cleanup_stale()
        subnet = _pick_subnet()
        state_dir = STATE_ROOT / cid
        state_dir.mkdir(parents=True)
        pid = os.getpid()
        (state_dir / "owner").write_text(json.dumps({"pid": pid, "start_time": _start_time(pid)}))
        net = PodNetwork(cluster_id=cid, bridge=f"{BRIDGE_PREFIX}{cid}", subnet=subnet, state_dir=state_dir)
        (state_dir / "network.json").write_text(net.to_json())
        try:
            _ip("link", "add", net.bridge, "type", "bridge")
            _ip("addr", "add", f"{net.host_address}/{subnet.prefixlen}", "dev", net.bridge)
            _ip("link", "set", net.bridge, "up")
        except BaseException:
            _teardown(state_dir)
            raise
    log.info("pod network %s: bridge %s, host address %s", subnet, net.bridge, net.host_address)
    return net


def destroy(net: PodNetwork) -> None:
    """Kill the rig's recorded process groups, delete its pod namespaces and bridge, drop its state."""
    with _machine_lock():
        _teardown(net.state_dir)


def _teardown(state_dir: Path) -> None:
    pids_dir = state_dir / "pids"
    for entry in sorted(pids_dir.glob("*")) if pids_dir.is_dir() else []:
        with contextlib.suppress(ValueError):
            pid = int(entry.name)
            if _alive(pid, entry.read_text() or None):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    for entry in sorted(pids_dir.glob("*")) if pids_dir.is_dir() else []:
        with contextlib.suppress(ValueError):
            while _alive(int(entry.name), entry.read_text() or None) and time.monotonic() < deadline:
                time.sleep(0.05)
    netns_dir = state_dir / "netns"
    for entry in sorted(netns_dir.glob("*")) if netns_dir.is_dir() else []:
        _delete_netns(entry.name)
    with contextlib.suppress(Exception):
        net = PodNetwork.from_json((state_dir / "network.json").read_text())
        # Namespaces not yet recorded (a crash between `ip netns add` and the record) carry the rig's id.
        for ns in NETNS_DIR.glob(f"{NETNS_PREFIX}{net.cluster_id}-*") if NETNS_DIR.is_dir() else []:
            _delete_netns(ns.name)
        if _ip("link", "show", net.bridge, check=False).returncode == 0:
            _ip("link", "del", net.bridge, check=False)
    shutil.rmtree(MEMORY_ROOT / state_dir.name, ignore_errors=True)
    shutil.rmtree(state_dir, ignore_errors=True)


def cleanup_stale() -> list[str]:
    """Tear down every recorded rig whose owner process is gone; return their ids. Call under the lock."""
    removed: list[str] = []
    if not STATE_ROOT.is_dir():
        return removed
    for state_dir in STATE_ROOT.iterdir():
        if not state_dir.is_dir():
            continue
        try:
            owner: dict[str, Any] = json.loads((state_dir / "owner").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            owner = {}
        pid = owner.get("pid")
        if isinstance(pid, int) and _alive(pid, owner.get("start_time")):
            continue
        log.warning("removing stale pod network of rig %s (owner %s gone)", state_dir.name, pid)
        _teardown(state_dir)
        removed.append(state_dir.name)
    return removed


class IpAllocator:
    """Pod addresses of one node's /24 (.2 .. .254; .1 stays free), reused after release."""

    def __init__(self, cidr: ipaddress.IPv4Network) -> None:
        self.cidr = cidr
        self._free = [str(a) for a in list(cidr.hosts())[1:]]
        self._used: set[str] = set()

    def allocate(self) -> str:
        """A free address; RuntimeError when the node's range is exhausted."""
        if not self._free:
            raise RuntimeError(f"pod addresses of {self.cidr} exhausted")
        addr = self._free.pop(0)
        self._used.add(addr)
        return addr

    def release(self, address: str) -> None:
        """Give an address back (it is handed out again last)."""
        if address in self._used:
            self._used.discard(address)
            self._free.append(address)


__all__ = [
    "DNS_PORT",
    "STATE_ROOT",
    "IpAllocator",
    "NetworkUnavailableError",
    "PodNetwork",
    "cleanup_stale",
    "create",
    "destroy",
    "namespaces_unavailable",
]
