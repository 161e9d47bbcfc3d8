"""Container logs as the CRI keeps them: a file per container start, lines `<RFC3339Nano> <stream> F <text>`.

`kubectl logs` reads the current file (`--previous`: the one before), optionally with timestamps, the last N
lines, or following it until the container stops.
"""

from __future__ import annotations

# Reads of the node's own log files: local and small per step.
# ruff: noqa: ASYNC240
import asyncio
import datetime
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path


def stamp() -> str:
    """RFC 3339 with nanoseconds (microsecond precision), UTC."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def log_path(pod_dir: Path, container: str, restart: int) -> Path:
    """The file of one container start."""
    return pod_dir / "logs" / container / f"{restart}.log"


async def pump(stream: asyncio.StreamReader, name: str, path: Path, lock: asyncio.Lock) -> None:
    """Copy one output stream of the container into its log file, line by line."""
    with path.open("ab", buffering=0) as f:
        while True:
            line = await stream.readline()
            if not line:
                return
            text = line.rstrip(b"\n")
            async with lock:
                f.write(f"{stamp()} {name} F ".encode() + text + b"\n")


def render(raw: bytes, timestamps: bool) -> bytes:
    """One CRI line as kubectl shows it."""
    ts, _, rest = raw.partition(b" ")
    _stream, _, rest = rest.partition(b" ")
    _tag, _, text = rest.partition(b" ")
    return (ts + b" " + text) if timestamps else text


def tail(path: Path, lines: int | None) -> tuple[list[bytes], int]:
    """The last `lines` raw lines (all when None) and the offset after them."""
    with path.open("rb") as f:
        data = f.read()
    all_lines = data.splitlines(keepends=True)
    complete = [ln for ln in all_lines if ln.endswith(b"\n")]
    offset = sum(len(ln) for ln in complete)
    chosen = complete if lines is None else list(deque(complete, maxlen=max(lines, 0)))
    return chosen, offset


async def stream(
    path: Path, *, follow: bool, tail_lines: int | None, timestamps: bool, running: Callable[[], bool]
) -> AsyncIterator[bytes]:
    """The log's lines (each ending in newline); with `follow`, new ones until the container stops."""
    if not path.exists():
        return
    first, offset = tail(path, tail_lines)
    for raw in first:
        yield render(raw, timestamps)
    if not follow:
        return
    pending = b""
    while True:
        alive = running()
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield render(raw, timestamps) + b"\n"
        if not alive:
            return
        await asyncio.sleep(0.2)
