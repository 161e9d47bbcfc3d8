"""The checkpoint commit protocol on the filesystem (no torch needed).

Layout under the checkpoint root::

    step-000000000120/   DCP files (``*.distcp`` + ``.metadata``) and ``manifest.json``
    latest               the name of the newest committed step directory
    fence                which worker group may train and commit (:mod:`workloads.fence`)

A step directory is committed only when ``latest`` names it. Order of a commit: DCP writes data and then
``.metadata`` (its own tmp + rename), rank 0 writes ``manifest.json`` (tmp + fsync + rename), then replaces
``latest`` the same way and fsyncs the root. A crash at any point leaves ``latest`` on the previous commit,
so a partial checkpoint is never loaded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from api import contract

log = logging.getLogger(__name__)

LATEST = "latest"
MANIFEST = "manifest.json"
DCP_METADATA = ".metadata"
_STEP_DIR = re.compile(r"^step-(\d{12})$")


@dataclass(frozen=True)
class Manifest:
    """What a committed checkpoint holds, beyond the tensors."""

    step: int
    epoch: int
    consumed: int
    global_batch: int
    dataset_size: int
    world_size: int
    torch_version: str
    save_s: float

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        return cls(**json.loads((directory / MANIFEST).read_text(encoding="utf-8")))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str, *, unique: bool = False) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new content, never a mix. ``unique``: a
    temporary file of its own, for a file that writers of other groups may replace at the same time."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp" if unique else f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def is_complete(directory: Path) -> bool:
    """DCP finished (``.metadata``) and the manifest is readable."""
    if not (directory / DCP_METADATA).is_file():
        return False
    try:
        Manifest.read(directory)
    except (OSError, ValueError, TypeError):
        return False
    return True


def commit(root: Path, manifest: Manifest) -> Path:
    """Write the manifest into the step directory and point ``latest`` at it (rank 0 only)."""
    directory = root / contract.step_dir_name(manifest.step)
    atomic_write(directory / MANIFEST, json.dumps(asdict(manifest), sort_keys=True))
    return directory


def publish_latest(root: Path, step: int) -> None:
    """Make ``step`` the committed checkpoint."""
    atomic_write(root / LATEST, contract.step_dir_name(step) + "\n")


def step_dirs(root: Path) -> list[tuple[int, Path]]:
    """All ``step-N`` directories under ``root``, newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def committed_step_dir(root: Path) -> Path | None:
    """The directory ``latest`` names, or, if that one is damaged, the newest complete older one.

    Without a ``latest`` nothing was ever committed: step directories then are leftovers of a crashed
    first save and are ignored.
    """
    try:
        name = (root / LATEST).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    match = _STEP_DIR.match(name)
    if match and is_complete(root / name):
        return root / name
    limit = int(match.group(1)) if match else None
    log.warning("latest -> %r is not a complete checkpoint; scanning older ones", name)
    for step, directory in step_dirs(root):
        if (limit is None or step < limit) and is_complete(directory):
            return directory
    return None


def resume_dir(root: Path, hint: Path | None) -> Path | None:
    """The checkpoint to resume from: the newest complete one of ``latest``'s and ``hint`` (the operator's
    record of the last commit), so a damaged or lost ``latest`` never silently restarts training from
    scratch. A hint outside ``root`` or not a complete ``step-N`` directory is ignored."""
    found = committed_step_dir(root)
    if hint is None or hint.parent != root or not _STEP_DIR.match(hint.name) or not is_complete(hint):
        if hint is not None:
            log.warning("resume hint %s is not a complete checkpoint under %s; ignored", hint, root)
        return found
    if found is None or hint.name > found.name:  # zero-padded step numbers sort as numbers
        return hint
    return found


def prepare_fresh(root: Path, step: int) -> Path:
    """An empty directory for the checkpoint of ``step``; a leftover from a crashed save is removed."""
    directory = root / contract.step_dir_name(step)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


def prune(root: Path, keep: int) -> list[Path]:
    """Delete step directories older than the newest ``keep`` committed ones; never touch newer ones."""
    latest = committed_step_dir(root)
    if latest is None:
        return []
    latest_step = int(latest.name.removeprefix("step-"))
    older = [(s, d) for s, d in step_dirs(root) if s <= latest_step]
    kept = 0
    removed: list[Path] = []
    for _step, directory in older:
        if kept < keep and is_complete(directory):
            kept += 1
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed
