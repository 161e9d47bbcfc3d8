"""Checkpoint directories as the workload commits them, for the commit and resume tests."""

from __future__ import annotations

from pathlib import Path

from workloads import commit
from workloads.commit import Manifest


def manifest(step: int) -> Manifest:
    return Manifest(step, 0, step * 8, 8, 48, 2, "2.15.0", 0.1)


def complete(root: Path, step: int) -> Path:
    """A step dir as a finished save leaves it (DCP metadata + manifest)."""
    directory = commit.prepare_fresh(root, step)
    (directory / commit.DCP_METADATA).write_bytes(b"meta")
    commit.commit(root, manifest(step))
    return directory
