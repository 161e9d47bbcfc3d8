"""One local component process: start in its own process group, wait until healthy, stop, keep its log."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class ComponentStartError(RuntimeError):
    """A component exited or never became healthy; the message quotes the end of its log."""

    def __init__(self, name: str, reason: str, log_path: Path, tail: str) -> None:
        self.name = name
        self.reason = reason
        self.log_path = log_path
        self.tail = tail
        super().__init__(f"{name}: {reason} (log {log_path}); last log lines:\n{tail}")


class PortInUseError(ComponentStartError):
    """The component could not bind one of its ports."""


def tail_file(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file ("" when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _die_with_parent() -> None:
    # Linux only: SIGKILL the child if the thread that forked it dies (e.g. the test runner is SIGKILLed).
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Component:
    """A command line plus a health probe; `start` launches it and blocks until the probe passes."""

    name: str
    argv: Sequence[str]
    log_path: Path
    healthy: Callable[[], bool]
    start_timeout: float = 120.0
    stop_timeout: float = 15.0
    env: dict[str, str] | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        """PID of the running process, if any."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.pid is not None

    def launch(self) -> None:
        """Start the process without waiting for health."""
        with self._lock:
            if self.running:
                return
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as logf:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                logf.write(f"=== pyroclast rig: starting {self.name} at {stamp}\n".encode())
                logf.write(("=== " + " ".join(self.argv) + "\n").encode())
                logf.flush()
                in_main = threading.current_thread() is threading.main_thread()
                # PDEATHSIG fires when the forking *thread* exits, so only use it from the main thread.
                self._proc = subprocess.Popen(
                    list(self.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=self.env,
                    preexec_fn=_die_with_parent if in_main else None,
                )
            log.info("started %s pid=%s", self.name, self._proc.pid)

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Poll the health probe; raise ComponentStartError (with log tail) on exit or timeout."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while True:
            proc = self._proc
            if proc is None:
                raise ComponentStartError(self.name, "was never started", self.log_path, "")
            code = proc.poll()
            if code is not None:
                self._fail(f"exited with code {code} during start")
            try:
                if self.healthy():
                    return
            except Exception as exc:  # probes raise connection errors while the process boots
                log.debug("%s probe: %s", self.name, exc)
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"not healthy after {self.start_timeout:.0f} s")
            time.sleep(0.1)

    def _fail(self, reason: str) -> None:
        tail = tail_file(self.log_path, 30)
        lowered = tail.lower()
        if "address already in use" in lowered or "bind: address" in lowered:
            raise PortInUseError(self.name, f"{reason}: a port is taken", self.log_path, tail)
        raise ComponentStartError(self.name, reason, self.log_path, tail)

    def start(self) -> None:
        """Launch and wait until healthy."""
        self.launch()
        self.wait_healthy()

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL after stop_timeout. Only ever signals our own child."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in %.0f s; killing", self.name, self.stop_timeout)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            self._proc = None
            log.info("stopped %s", self.name)

    def tail(self, lines: int = 40) -> str:
        """The end of this component's log."""
        return tail_file(self.log_path, lines)
