"""Inside a pod's namespaces: lay out the container's filesystem, set the hostname, exec the command.

Run as pid 1 of a fresh PID namespace by `ip netns exec <pod netns> unshare --mount --uts --pid --fork
--kill-child --mount-proc --propagation private -- python -m e2e.cluster.kubelet.sandbox <spec.json>`.

The container's root is an overlay of the host's `/` with a tmpfs upper layer, so the command sees the host's
programs (the project's virtualenv stands in for the image) while everything it writes outside its volumes is
private and vanishes with it. `/dev` is a fresh tmpfs with the usual device nodes bound in, a private 64 MiB
`/dev/shm` (or the pod's memory-backed emptyDir) and `/dev/termination-log` bound to a file the kubelet reads
after exit; `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` are written as the kubelet lays them out.
Every mount lives in the container's own mount namespace, so nothing outlives the container.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)

_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(err)}")


def _bind(source: str, target: str, *, readonly: bool = False, recursive: bool = False) -> None:
    _mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        _mount(source, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _target(root: Path, path: str) -> Path:
    """`path` inside `root`, following symlinks as the container will see them (an absolute link such as
    /var/run -> /run resolves under `root`, never on the host)."""
    current = root
    parts = [p for p in path.split("/") if p and p != "."]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise OSError(f"too many levels of symbolic links in {path}")
            link = os.readlink(candidate)
            parts = [p for p in link.split("/") if p and p != "."] + parts
            if link.startswith("/"):
                current = root
            continue
        current = candidate
    return current


def _ensure(path: Path, *, is_dir: bool) -> None:
    if is_dir:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)


def build_root(spec: dict[str, Any]) -> Path:
    """Mount the container's filesystem under the spec's scratch directory and return its root."""
    scratch = Path(spec["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    _mount("tmpfs", str(scratch), "tmpfs", 0, "mode=755")
    for d in ("upper", "work", "root"):
        (scratch / d).mkdir()
    root = scratch / "root"
    _mount(
        "overlay",
        str(root),
        "overlay",
        0,
        f"lowerdir=/,upperdir={scratch / 'upper'},workdir={scratch / 'work'}",
    )
    _bind("/proc", str(root / "proc"), recursive=True)
    _bind("/sys", str(root / "sys"), recursive=True, readonly=False)
    dev = root / "dev"
    _mount("tmpfs", str(dev), "tmpfs", 0, "mode=755,size=65536k")
    for name in _DEVICES:
        _ensure(dev / name, is_dir=False)
        _bind(f"/dev/{name}", str(dev / name))
    (dev / "pts").mkdir()
    _bind("/dev/pts", str(dev / "pts"))
    (dev / "shm").mkdir()
    _mount("shm", str(dev / "shm"), "tmpfs", 0, "mode=1777,size=65536k")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
    ):
        os.symlink(target, dev / name)
    os.symlink("/proc/self/fd/2", dev / "stderr")
    for path, content in (spec.get("files") or {}).items():
        target = _target(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_text(content)
    if spec.get("user") and spec["user"][0] != 0:
        # The virtualenv and checkout stand in for the image, whose files any user may run: let the
        # container's user traverse their ancestors (e.g. /root). Only this container's overlay copy changes.
        for path in spec.get("exposePaths") or []:
            for ancestor in [*reversed(Path(path).parents), Path(path)]:
                target = _target(root, str(ancestor))
                if target.is_dir() and not target.stat().st_mode & 0o001:
                    os.chmod(target, target.stat().st_mode | 0o005)
    if spec.get("workingDir"):  # as runtimes do: the working directory exists
        _target(root, spec["workingDir"]).mkdir(parents=True, exist_ok=True)
    for m in spec.get("mounts") or []:
        source = Path(m["source"])
        target = _target(root, m["target"])
        _ensure(target, is_dir=source.is_dir())
        _bind(str(source), str(target), readonly=bool(m.get("readonly")), recursive=True)
    # A volume over an ancestor of the stand-ins for the image (an emptyDir at /tmp with the checkout under
    # /tmp, say) would hide them: bind them back on top, read-only, as an image's files would be there.
    targets = [Path(m["target"]) for m in spec.get("mounts") or []]
    for path in spec.get("exposePaths") or []:
        if Path(path).is_dir() and any(Path(path).is_relative_to(t) for t in targets):
            target = _target(root, path)
            _ensure(target, is_dir=True)
            _bind(path, str(target), readonly=True, recursive=True)
    return root


def main(argv: list[str]) -> None:
    """Set up from the spec file named in argv[1] and exec the container's command (never returns)."""
    spec: dict[str, Any] = json.loads(Path(argv[1]).read_text())
    try:
        socket.sethostname(spec["hostname"])
        root = build_root(spec)
        os.chroot(root)
        if spec.get("readonlyRoot"):
            _mount("none", "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        workdir = spec.get("workingDir") or "/"
        user: list[int] | None = spec.get("user")
        if user is not None:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])
        os.chdir(workdir)
        env: dict[str, str] = spec["env"]
        command: list[str] = spec["command"]
        os.execvpe(command[0], command, env)
    except OSError as exc:
        # The kubelet reports this as the container's failure to start (exit 128, as runc's "exec failed").
        print(f"pyroclast sandbox: {exc}", file=sys.stderr, flush=True)
        os._exit(128)


if __name__ == "__main__":
    main(sys.argv)
