"""The checkpoint commit protocol on plain files: what counts as committed, what may be deleted."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from api import contract
from tests.workloads.commits import complete, manifest
from workloads import commit
from workloads.commit import Manifest


def test_nothing_is_committed_without_latest(tmp_path: Path) -> None:
    complete(tmp_path, 4)  # crashed before `latest` was ever written
    assert commit.committed_step_dir(tmp_path) is None


def test_latest_names_the_committed_dir(tmp_path: Path) -> None:
    complete(tmp_path, 4)
    commit.publish_latest(tmp_path, 4)
    complete(tmp_path, 8)  # manifest written, crash before `latest` moved
    assert commit.committed_step_dir(tmp_path) == tmp_path / "step-000000000004"
    assert Manifest.read(tmp_path / "step-000000000004") == manifest(4)


def test_damaged_latest_falls_back_to_an_older_complete_dir(tmp_path: Path) -> None:
    complete(tmp_path, 2)
    broken = complete(tmp_path, 4)
    complete(tmp_path, 6)
    commit.publish_latest(tmp_path, 4)
    (broken / commit.DCP_METADATA).unlink()
    # step 6 is newer than the pointer, so it was never committed and must not be picked
    assert commit.committed_step_dir(tmp_path) == tmp_path / "step-000000000002"


@pytest.mark.parametrize("missing", [commit.DCP_METADATA, commit.MANIFEST])
def test_a_dir_missing_either_file_is_incomplete(tmp_path: Path, missing: str) -> None:
    directory = complete(tmp_path, 2)
    (directory / missing).unlink()
    assert not commit.is_complete(directory)


def test_corrupt_manifest_is_incomplete(tmp_path: Path) -> None:
    directory = complete(tmp_path, 2)
    (directory / commit.MANIFEST).write_text("{")
    assert not commit.is_complete(directory)


def test_prepare_fresh_clears_a_crashed_save(tmp_path: Path) -> None:
    directory = complete(tmp_path, 3)
    (directory / "__0_0.distcp").write_bytes(b"x")
    again = commit.prepare_fresh(tmp_path, 3)
    assert again == directory
    assert list(again.iterdir()) == []


def test_prune_keeps_newest_committed_and_anything_newer_than_latest(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        complete(tmp_path, step)
    commit.publish_latest(tmp_path, 3)
    in_flight = tmp_path / contract.step_dir_name(5)
    in_flight.mkdir()
    removed = commit.prune(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["step-000000000001"]
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert left == ["step-000000000002", "step-000000000003", "step-000000000004", "step-000000000005"]


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "latest"
    commit.atomic_write(target, "a")
    commit.atomic_write(target, "b")
    assert target.read_text() == "b"
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]


def test_manifest_round_trips_as_json(tmp_path: Path) -> None:
    directory = complete(tmp_path, 7)
    assert json.loads((directory / commit.MANIFEST).read_text()) == asdict(manifest(7))
