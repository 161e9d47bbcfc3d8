"""Real-process harness: a rendezvous store and torchrun agents on loopback, each agent a fake node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Short timeouts so failures turn into restarts within seconds on a 2-core machine.
RDZV_CONF = (
    "is_host=false,last_call_timeout=4,join_timeout=120,keep_alive_interval=1,keep_alive_max_attempt=2"
)


BATCH = 8
DATASET = 48  # 6 steps per epoch


def job_env(workdir: Path, **overrides: Any) -> dict[str, str]:
    env = {
        "PYROCLAST_CHECKPOINT_DIR": str(workdir / "ckpt"),
        "PYROCLAST_CHECKPOINT_INTERVAL": "2",
        "PYROCLAST_TOTAL_STEPS": "12",
        "PYROCLAST_GLOBAL_BATCH": str(BATCH),
        "PYROCLAST_DATASET_SIZE": str(DATASET),
        "PYROCLAST_PROGRESS_FILE": str(workdir / "progress.jsonl"),
        "PYROCLAST_SAMPLE_LOG_DIR": str(workdir),
        "PYROCLAST_INIT_TIMEOUT": "60",
        "PYROCLAST_STEP_TIMEOUT": "15",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYROCLAST_", "PET_", "MLFLOW_"))}
    env.update(
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
        TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1",
        PYTHONWARNINGS="ignore",
    )
    env.update(extra)
    return env


@contextmanager
def rendezvous_store(workdir: Path) -> Iterator[int]:
    """Run ``workloads.rendezvous`` on a free loopback port; yields the port."""
    out = workdir / "rdzv.out"
    with out.open("w") as stdout, (workdir / "rdzv.err").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workloads.rendezvous", "--host", "127.0.0.1", "--port", "0"],
            stdout=stdout,
            stderr=stderr,
            env=_env({}),
        )
    try:
        deadline = time.monotonic() + 60
        while not out.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rendezvous store did not start: {(workdir / 'rdzv.err').read_text()}")
            time.sleep(0.2)
        yield int(json.loads(out.read_text().splitlines()[0])["port"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclass
class Agent:
    """One torchrun process (a simulated node) and its log files."""

    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    stdout: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout = self.workdir / f"{self.name}.out"

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill_node(self) -> None:
        """SIGKILL the agent and every worker it started, like a node vanishing."""
        pids = descendants(self.proc.pid)
        self.proc.kill()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill_node()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        err = self.workdir / f"{self.name}.err"
        return err.read_text(errors="replace")[-6000:] if err.exists() else ""


def descendants(pid: int) -> list[int]:
    """All live descendant pids of ``pid`` (from /proc)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            kids = [int(c) for c in children]
            found += kids
            frontier += kids
    return found


def start_agent(
    workdir: Path,
    name: str,
    *,
    port: int | None,
    nproc: int,
    max_restarts: int,
    env: dict[str, str],
    local_addr: str = "127.0.0.1",
    nnodes: str = "1",
    rdzv_id: str = "job",
) -> Agent:
    """Start ``torchrun -m workloads.train`` as one node of job ``rdzv_id`` (``port=None``: standalone)."""
    if port is None:
        launch = ["--standalone", "--nnodes=1"]
    else:
        launch = [
            f"--nnodes={nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            f"--rdzv-id={rdzv_id}",
            f"--rdzv-conf={RDZV_CONF}",
            f"--local-addr={local_addr}",
        ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *launch,
        f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}",
        "--monitor-interval=0.1",
        "-m",
        "workloads.train",
    ]
    agent_env = _env({"PYROCLAST_TERMINATION_LOG": str(workdir / f"{name}.termination"), **env})
    with (workdir / f"{name}.out").open("w") as out, (workdir / f"{name}.err").open("w") as err:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=agent_env, cwd=workdir, start_new_session=True
        )
    return Agent(name, proc, workdir)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a progress file (missing file: none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(path: Path, predicate: Any, timeout: float, agents: list[Agent]) -> list[dict[str, Any]]:
    """Poll the progress file until ``predicate(events)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(path)
        if predicate(events):
            return events
        time.sleep(0.1)
    logs = "\n".join(f"--- {a.name}\n{a.log()}" for a in agents)
    raise AssertionError(f"timed out waiting on {path}; events={read_events(path)[-5:]}\n{logs}")


def final_losses(events: list[dict[str, Any]]) -> dict[int, float]:
    """Loss per step, the last report of each step winning (re-run steps after a crash overwrite)."""
    return {e["step"]: e["loss"] for e in events if e["event"] == "progress"}


def sample_log(directory: Path) -> dict[int, dict[int, list[int]]]:
    """``{step: {rank: ids}}`` from the per-rank sample logs; the last attempt of each step wins."""
    rows: list[dict[str, Any]] = []
    for path in directory.glob("samples-*.jsonl"):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps: dict[int, dict[int, list[int]]] = {}
    world: dict[int, int] = {}
    for row in sorted(rows, key=lambda r: r["ts"]):
        if world.get(row["step"]) != row["world_size"]:
            steps[row["step"]] = {}
            world[row["step"]] = row["world_size"]
        steps[row["step"]][row["rank"]] = row["ids"]
    return steps
