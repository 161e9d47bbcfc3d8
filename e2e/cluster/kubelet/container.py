"""One start of a container: the sandboxed process, its output pumped into the log, its exit.

The process tree is `ip netns exec <pod netns> unshare ... -- <venv python> sandbox.py <spec>`: `ip` execs
`unshare`, whose forked child becomes pid 1 of the container's PID namespace and execs the container's
command.
Signals go to that pid 1 (the container's main process, as a runtime sends them); when it exits the kernel
kills everything else in the namespace. `unshare --kill-child` and PR_SET_PDEATHSIG tie the container to the
kubelet process, so nothing outlives the rig even when it is SIGKILLed.
"""

from __future__ import annotations

# Reads of small local files under /proc and the node directory: blocking for microseconds.
# ruff: noqa: ASYNC240
import asyncio
import contextlib
import ctypes
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.cluster.kubelet import logs

SANDBOX = Path(__file__).with_name("sandbox.py")
_PR_SET_PDEATHSIG = 1


def _die_with_kubelet() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setpgid(0, 0)


@dataclass
class ContainerProcess:
    """A started container; `wait` returns its exit code (128 + signal when killed by one)."""

    name: str
    restart: int
    log_file: Path
    proc: asyncio.subprocess.Process
    started_at: str
    pumps: list[asyncio.Task[None]] = field(default_factory=list[asyncio.Task[None]])
    main_pid: int | None = None
    exit_code: int | None = None

    async def find_main_pid(self, within: float = 10.0) -> int | None:
        """The host pid of the container's pid 1 (the unshare process's only child)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.proc.returncode is None and loop.time() < deadline:
            with contextlib.suppress(OSError):
                pids = children.read_text().split()
                if pids:
                    self.main_pid = int(pids[0])
                    return self.main_pid
            await asyncio.sleep(0.01)
        return None

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the container's main process (SIGKILL takes the whole PID namespace down)."""
        target = self.main_pid
        if target is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, sig)
        if sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for the exit and the log to be complete."""
        rc = await self.proc.wait()
        await asyncio.gather(*self.pumps, return_exceptions=True)
        self.exit_code = 128 - rc if rc < 0 else rc
        return self.exit_code


async def start(
    *,
    name: str,
    restart: int,
    netns: str,
    python: str,
    spec: dict[str, Any],
    spec_file: Path,
    log_file: Path,
) -> ContainerProcess:
    """Launch the container described by `spec` (see sandbox.py) in the pod's network namespace."""
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(spec))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.touch()
    argv = [
        "ip", "netns", "exec", netns,
        "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
        "--propagation", "private",
        "--", python, "-I", str(SANDBOX), str(spec_file),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_kubelet,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lock = asyncio.Lock()
    run = ContainerProcess(name=name, restart=restart, log_file=log_file, proc=proc, started_at=logs.stamp())
    run.pumps = [
        asyncio.create_task(logs.pump(proc.stdout, "stdout", log_file, lock)),
        asyncio.create_task(logs.pump(proc.stderr, "stderr", log_file, lock)),
    ]
    await run.find_main_pid()
    return run
