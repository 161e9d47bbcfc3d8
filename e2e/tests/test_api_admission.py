"""The TorchJob CRD on a real apiserver: installs, explains itself, defaults like the models, refuses bad jobs
with messages that name the field and the problem, enforces update rules, serves status and scale."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from api import CRD_NAME, TorchJob
from api.crd import render
from e2e.cluster import Cluster
from tests.api.api_cases import INVALID_CASES, InvalidCase, base_job

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("torchjob-*.yaml"))


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> str:
    """The TorchJob CRD, applied from the models and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=render())
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    return CRD_NAME


def create(cluster: Cluster, namespace: str, doc: dict[str, Any], *, dry_run: bool = False) -> Any:
    """`kubectl create` of `doc`; the CompletedProcess, never raising."""
    args = ["create", "-n", namespace, "-f", "-", "-o", "json"]
    if dry_run:
        args.append("--dry-run=server")
    return cluster.kubectl(*args, input=json.dumps(doc), check=False)


def get_job(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "-n", namespace, f"torchjob/{name}", "-o", "json").stdout
    return json.loads(out)


def test_crd_is_established_with_names(cluster: Cluster, crd: str) -> None:
    obj = json.loads(cluster.kubectl("get", f"crd/{crd}", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert conditions.get("NamesAccepted") == "True"
    accepted = obj["status"]["acceptedNames"]
    assert accepted["shortNames"] == ["tj"]
    assert accepted["categories"] == ["pyroclast"]


def explain(cluster: Cluster, field: str, timeout: float = 60.0) -> str:
    """`kubectl explain field`, retried: a new CRD's OpenAPI is published a little after Established."""
    deadline = time.monotonic() + timeout
    while True:
        proc = cluster.kubectl("explain", field, check=False)
        if proc.returncode == 0 or time.monotonic() > deadline:
            assert proc.returncode == 0, proc.stderr
            return proc.stdout
        time.sleep(0.5)


def test_explain_shows_the_docs(cluster: Cluster, crd: str) -> None:
    spec = explain(cluster, "torchjob.spec")
    for text in (
        "nodes",
        "nprocPerNode",
        "checkpoint",
        "failurePolicy",
        "What torchrun starts on each process",
    ):
        assert text in spec, text
    nodes = explain(cluster, "tj.spec.nodes")
    assert "elastic" in nodes
    assert "kubectl scale" in nodes
    preempt = explain(cluster, "torchjob.spec.scheduling.preemptible")
    assert "maxPreemptionRestarts" in preempt
    status = explain(cluster, "torchjob.status.phase")
    assert "Queued" in status


def test_valid_job_round_trips_with_defaults(cluster: Cluster, crd: str, namespace: str) -> None:
    doc = base_job("roundtrip")
    proc = create(cluster, namespace, doc)
    assert proc.returncode == 0, proc.stderr
    stored = get_job(cluster, namespace, "roundtrip")
    expected = TorchJob.model_validate(doc).to_k8s()
    assert stored["spec"] == expected["spec"]
    # The apiserver's object, server metadata and all, parses and comes back unchanged.
    assert TorchJob.model_validate(stored).to_k8s() == stored


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_admitted(cluster: Cluster, crd: str, namespace: str, path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    proc = create(cluster, namespace, doc)
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(proc.stdout)
    assert stored["spec"] == TorchJob.model_validate(doc).to_k8s()["spec"]


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_invalid_job_is_rejected_with_a_useful_message(
    cluster: Cluster, crd: str, namespace: str, case: InvalidCase
) -> None:
    proc = create(cluster, namespace, case.manifest(), dry_run=True)
    assert proc.returncode != 0, f"{case.id} was admitted"
    for text in case.expect:
        assert text in proc.stderr, f"{case.id}: {text!r} not in {proc.stderr!r}"


def patch(cluster: Cluster, namespace: str, name: str, body: dict[str, Any], *, status: bool = False) -> Any:
    args = ["patch", "-n", namespace, f"torchjob/{name}", "--type=merge", "-p", json.dumps(body)]
    if status:
        args.append("--subresource=status")
    return cluster.kubectl(*args, check=False)


def test_update_rules_match_the_models(cluster: Cluster, crd: str, namespace: str) -> None:
    doc = base_job("elastic")
    doc["spec"]["nodes"] = {"count": 4, "min": 2, "max": 8}
    assert create(cluster, namespace, doc).returncode == 0
    steps: list[tuple[dict[str, Any], str | None]] = [
        (
            {"spec": {"image": "ghcr.io/example/train:2.0"}},
            "image and nprocPerNode can only change while the job is suspended",
        ),
        ({"spec": {"nodes": {"min": 3}}}, "nodes.min is immutable"),
        ({"spec": {"nodes": {"max": 16}}}, "nodes.max is immutable"),
        ({"spec": {"scheduling": {"queue": "other"}}}, "scheduling.queue is immutable"),
        ({"spec": {"checkpoint": {"path": "/elsewhere"}}}, "checkpoint.path is immutable"),
        ({"spec": {"nodes": {"count": 6}}}, None),
        ({"spec": {"runPolicy": {"suspend": True}}}, None),
        ({"spec": {"image": "ghcr.io/example/train:2.0", "nprocPerNode": "cpu"}}, None),
    ]
    for body, message in steps:
        before = TorchJob.model_validate(get_job(cluster, namespace, "elastic"))
        after_doc = before.to_k8s()
        for key, value in body["spec"].items():
            after_doc["spec"][key] = {**after_doc["spec"][key], **value} if isinstance(value, dict) else value
        model_errors = TorchJob.model_validate(after_doc).update_errors(before)
        proc = patch(cluster, namespace, "elastic", body)
        if message is None:
            assert proc.returncode == 0, proc.stderr
            assert model_errors == []
        else:
            assert proc.returncode != 0, f"{body} was admitted"
            assert message in proc.stderr, proc.stderr
            assert model_errors == [message]
    final = get_job(cluster, namespace, "elastic")["spec"]
    assert final["nodes"] == {"count": 6, "min": 2, "max": 8}
    assert final["image"] == "ghcr.io/example/train:2.0"


def test_scale_subresource(cluster: Cluster, crd: str, namespace: str) -> None:
    doc = base_job("scaled")
    doc["spec"]["nodes"] = {"count": 2, "min": 1, "max": 4}
    assert create(cluster, namespace, doc).returncode == 0
    cluster.kubectl("scale", "-n", namespace, "tj/scaled", "--replicas=4")
    assert get_job(cluster, namespace, "scaled")["spec"]["nodes"]["count"] == 4
    refused = cluster.kubectl("scale", "-n", namespace, "tj/scaled", "--replicas=5", check=False)
    assert refused.returncode != 0
    assert "nodes.count must be less than or equal to nodes.max" in refused.stderr
    status = {"status": {"activeNodes": 4, "selector": "pyroclast.dev/job-name=scaled"}}
    assert patch(cluster, namespace, "scaled", status, status=True).returncode == 0
    scale = json.loads(
        cluster.kubectl(
            "get", "--raw", f"/apis/pyroclast.dev/v1alpha1/namespaces/{namespace}/torchjobs/scaled/scale"
        ).stdout
    )
    assert scale["spec"]["replicas"] == 4
    assert scale["status"]["replicas"] == 4
    assert scale["status"]["selector"] == "pyroclast.dev/job-name=scaled"


def test_status_subresource_and_printer_columns(cluster: Cluster, crd: str, namespace: str) -> None:
    assert create(cluster, namespace, base_job("shown")).returncode == 0
    # A spec write cannot set status.
    ignored = patch(cluster, namespace, "shown", {"status": {"phase": "Failed"}})
    assert ignored.returncode == 0, ignored.stderr
    assert get_job(cluster, namespace, "shown").get("status", {}).get("phase") is None
    status = {
        "status": {
            "phase": "Running",
            "readyNodes": 2,
            "failureRestarts": 1,
            "preemptionRestarts": 3,
            "lastCheckpoint": {"step": 1200, "time": "2026-11-23T10:00:00Z"},
            "worldSize": 4,
            "progress": {"step": 1234, "totalSteps": 5000, "loss": 0.75},
            "goodput": {"heldSeconds": 1000, "productiveSeconds": 875, "percent": 87.5},
            "conditions": [
                {
                    "type": "Running",
                    "status": "True",
                    "reason": "AllNodesReady",
                    "message": "",
                    "lastTransitionTime": "2026-11-23T10:00:00Z",
                }
            ],
        }
    }
    proc = patch(cluster, namespace, "shown", status, status=True)
    assert proc.returncode == 0, proc.stderr
    job = TorchJob.model_validate(get_job(cluster, namespace, "shown"))
    assert job.status is not None
    assert job.status.progress is not None
    assert job.status.progress.loss == 0.75
    table = cluster.kubectl("get", "-n", namespace, "tj", "shown", "-o", "wide").stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[:11] == [
        "NAME",
        "PHASE",
        "READY",
        "DESIRED",
        "QUEUE",
        "RESTARTS",
        "PREEMPTIONS",
        "CHECKPOINT",
        "GOODPUT",
        "RUNTIME",
        "AGE",
    ]
    assert row[:9] == ["shown", "Running", "2", "2", "default", "1", "3", "1200", "87.5"]
    assert "WORLD" in header
    assert "STEP" in header
    category = cluster.kubectl("get", "-n", namespace, "pyroclast", "-o", "name").stdout
    assert "torchjob.pyroclast.dev/shown" in category
    bad = patch(cluster, namespace, "shown", {"status": {"phase": "Exploded"}}, status=True)
    assert bad.returncode != 0
    assert "Unsupported value" in bad.stderr
