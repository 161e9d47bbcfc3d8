"""Where the CPU went during a benchmark phase: seconds per process, and the machine's busy share.

On a small shared machine the operator, the apiserver, etcd, the scheduler and kwok compete for the same
cores, so a throughput figure means little without this breakdown.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15 of stat)


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle or waiting on I/O) since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / _TICK


@dataclass
class CpuMeter:
    """CPU seconds per named process between :meth:`start` and :meth:`stop`."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict[str, float])
    _busy: float = 0.0
    _wall: float = 0.0

    def start(self) -> CpuMeter:
        self._start = {name: process_seconds(pid) for name, pid in self.pids.items()}
        self._busy, self._wall = machine_busy_seconds(), time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        """Seconds per process, ``machine_busy`` (all processes, all cores), ``wall`` and ``cores``."""
        out = {name: round(process_seconds(pid) - self._start[name], 2) for name, pid in self.pids.items()}
        out["machine_busy"] = round(machine_busy_seconds() - self._busy, 2)
        out["wall"] = round(time.monotonic() - self._wall, 2)
        out["cores"] = float(os.cpu_count() or 1)
        return out


def format_cpu(label: str, seconds: dict[str, float]) -> str:
    """One line: each process's CPU seconds, busiest first, and the machine's busy share."""
    parts = sorted(
        ((k, v) for k, v in seconds.items() if k not in ("machine_busy", "wall", "cores")),
        key=lambda kv: -kv[1],
    )
    capacity = seconds["wall"] * seconds["cores"]
    share = 100 * seconds["machine_busy"] / capacity if capacity else 0.0
    listed = ", ".join(f"{k} {v:.1f}" for k, v in parts)
    return f"{label} CPU s over {seconds['wall']:.1f} s wall: {listed}; machine {share:.0f}% busy"
