"""Checkpoint benchmark on CPU: blocking vs async save (training-loop stall) and resume time.

``python -m e2e.bench.bench_checkpoint [--size-mb 300] [--steps 6] [--dir /tmp/x]`` runs one gloo process
with the reference MLP grown to about ``--size-mb`` of parameters (SGD momentum doubles the saved state),
using the same :class:`workloads.checkpoint.Checkpointer` the training entry point uses. Prints a table and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from workloads.checkpoint import AppState, Checkpointer
from workloads.data import FEATURES, DataCursor
from workloads.faults import FaultInjector
from workloads.model import build_model, parameter_bytes

WIDTH = 4096


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _depth_for(size_mb: float) -> int:
    per_layer = (WIDTH * WIDTH + WIDTH) * 4
    return 1 + max(1, round(size_mb * 2**20 / per_layer))  # the first hidden layer is FEATURES x WIDTH


class Bench:
    """A model, its optimizer and a fixed batch; times training steps and checkpoint operations."""

    def __init__(self, size_mb: float, root: Path) -> None:
        self.model = build_model(WIDTH, _depth_for(size_mb), seed=0)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        self.state = AppState(self.model, self.optimizer)
        self.x = torch.randn(16, FEATURES)
        self.y = torch.randn(16, 1)
        self.cursor = DataCursor(1024, 16, 0)
        group = dist.new_group(backend="gloo")
        assert isinstance(group, dist.ProcessGroup)
        self.ckpt_pg = group
        self.root = root
        self.step = 0

    def checkpointer(self) -> Checkpointer:
        return Checkpointer(self.root, 0, 1, 2, FaultInjector(None, 0), self.ckpt_pg)

    def train_step(self) -> float:
        started = time.perf_counter()
        loss = nn.functional.mse_loss(self.model(self.x), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return time.perf_counter() - started


def run(size_mb: float, steps: int, root: Path) -> dict[str, Any]:
    """Measure and return all figures."""
    bench = Bench(size_mb, root)
    ckpt = bench.checkpointer()
    for _ in range(2):  # warm-up
        bench.train_step()
    baseline = statistics.median(bench.train_step() for _ in range(steps))

    blocking = ckpt.save(bench.step, bench.cursor, bench.state, asynchronous=False)
    assert blocking is not None
    state_bytes = sum(p.stat().st_size for p in (root / f"step-{bench.step:012d}").glob("*.distcp"))

    bench.train_step()
    saved = [p.detach().clone() for p in bench.model.parameters()]
    t0 = time.perf_counter()
    ckpt.save(bench.step, bench.cursor, bench.state, asynchronous=True)
    async_blocking = time.perf_counter() - t0
    overlapped: list[float] = []
    while ckpt.pending is not None and not ckpt.pending.future.done():
        overlapped.append(bench.train_step())
    t1 = time.perf_counter()
    finished = ckpt.wait()
    assert finished is not None
    tail_wait = time.perf_counter() - t1
    slowdown = sum(max(0.0, s - baseline) for s in overlapped)
    async_stall = async_blocking + slowdown + tail_wait

    fresh = Bench(size_mb, root)
    loader = fresh.checkpointer()
    t2 = time.perf_counter()
    manifest = loader.load(fresh.state)
    resume_s = time.perf_counter() - t2
    assert manifest is not None
    assert manifest.step == finished.step
    for loaded, expected in zip(fresh.model.parameters(), saved, strict=True):
        assert torch.equal(loaded, expected), "resumed weights differ from the saved ones"
    return {
        "params_mb": round(parameter_bytes(bench.model) / 2**20, 1),
        "checkpoint_mb": round(state_bytes / 2**20, 1),
        "step_s": round(baseline, 4),
        "blocking_save_s": round(blocking.save_s, 3),
        "async_blocking_s": round(async_blocking, 3),
        "async_total_s": round(finished.save_s, 3),
        "async_steps_overlapped": len(overlapped),
        "async_stall_s": round(async_stall, 3),
        "stall_ratio_async_over_blocking": round(async_stall / blocking.save_s, 3),
        "resume_s": round(resume_s, 3),
        "write_mb_per_s": round(state_bytes / 2**20 / blocking.save_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="checkpoint save/resume benchmark (CPU, gloo)")
    parser.add_argument("--size-mb", type=float, default=300.0, help="model parameter size")
    parser.add_argument("--steps", type=int, default=5, help="steps for the baseline step time")
    parser.add_argument("--dir", type=Path, default=None, help="checkpoint root (default: a temp dir)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = args.dir or Path(tempfile.mkdtemp(prefix="pyroclast-bench-"))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        figures = run(args.size_mb, args.steps, root)
    finally:
        dist.destroy_process_group()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    print(json.dumps({"bench": "checkpoint", **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
