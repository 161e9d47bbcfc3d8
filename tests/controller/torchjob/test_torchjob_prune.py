"""The pod and PodGroup transforms keep every field the operator reads: on real-shaped objects captured from
the rig (and variants: deleting, reporting, log-tail messages, restarted containers), every reading and every
plan decision is the same on pruned objects as on full ones; pruning is idempotent and leaves its input
alone."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api import TorchJob
from api.constants import TRAINER_CONTAINER
from controller.runtime import objects
from controller.runtime.cache import Cache, owner_uid_index
from controller.runtime.handler import enqueue_for_owner
from controller.runtime.objects import JsonObject
from controller.torchjob.disruption import Departures
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.labels import job_labels, owner_reference
from controller.torchjob.observe import observe_podgroup, observe_worker, worker_slot
from controller.torchjob.plan import plan
from controller.torchjob.prune import prune_pod, prune_podgroup
from controller.torchjob.rendezvous import is_worker, observe_store
from controller.torchjob.report import read_report
from scheduling import podgroup_name, podgroup_spec_patch
from scheduling.podgroup import desired_podgroup

FIXTURES: JsonObject = json.loads((Path(__file__).parent / "fixtures" / "cluster_objects.json").read_text())
REPORT = json.dumps(
    {"step": 120, "total_steps": 1000, "loss": 1.25, "committed_step": 100, "committed_time": 1.7e9}
)


def _trainer_status(pod: JsonObject) -> JsonObject:
    return next(cs for cs in pod["status"]["containerStatuses"] if cs["name"] == TRAINER_CONTAINER)


def _variants(pod: JsonObject) -> list[JsonObject]:
    """The pod, and states the rig did not show at capture time."""
    out = [pod]
    deleting = copy.deepcopy(pod)
    deleting["metadata"]["deletionTimestamp"] = "2026-11-23T16:40:00Z"
    out.append(deleting)
    if any(cs["name"] == TRAINER_CONTAINER for cs in pod["status"].get("containerStatuses", [])):
        for message in (REPORT, "Traceback (most recent call last):\n  boom", "{not json", "{" + "x" * 5000):
            done = copy.deepcopy(pod)
            _trainer_status(done)["state"] = {
                "terminated": {"exitCode": 1, "message": message, "finishedAt": "2026-11-23T16:41:00Z"}
            }
            out.append(done)
        restarted = copy.deepcopy(pod)
        trainer = _trainer_status(restarted)
        trainer["lastState"] = {
            "terminated": {"exitCode": 7, "message": REPORT, "finishedAt": "2026-11-23T16:39:00Z"}
        }
        trainer["state"] = {"running": {"startedAt": "2026-11-23T16:40:00Z"}}
        out.append(restarted)
        sidecar = copy.deepcopy(pod)
        sidecar["status"]["containerStatuses"].insert(
            0, {"name": "sidecar", "state": {"terminated": {"exitCode": 2, "message": "sidecar died"}}}
        )
        out.append(sidecar)
    not_ready = copy.deepcopy(pod)
    for cond in not_ready["status"].get("conditions", []):
        cond["status"] = "False"
    out.append(not_ready)
    return out


PODS = [v for p in FIXTURES["pods"] for v in _variants(p)]
PODGROUPS = FIXTURES["podgroups"]


def _readings(pod: JsonObject) -> tuple[object, ...]:
    meta = objects.metadata(pod)
    return (
        observe_worker(pod),
        worker_slot(pod),
        read_report(pod),
        is_worker(pod),
        objects.name(pod),
        objects.namespace(pod),
        objects.resource_version(pod),
        objects.labels(pod),
        meta.get("uid"),
        meta.get("deletionTimestamp") is not None,
        owner_uid_index(pod),
        enqueue_for_owner(TORCHJOBS)(pod),
        [(o.get("controller"), o.get("uid")) for o in objects.owner_references(pod)],
    )


@pytest.mark.parametrize("pod", PODS, ids=lambda p: objects.name(p))
def test_every_reading_of_a_pod_is_the_same_after_pruning(pod: JsonObject) -> None:
    assert _readings(prune_pod(pod)) == _readings(pod)


def test_the_variants_cover_reports_disruptions_failures_and_deletions() -> None:
    workers = [w for w in map(observe_worker, PODS) if w is not None]
    assert any(w.disruption for w in workers)
    assert any(w.exit_code not in (None, 0) for w in workers)
    assert any(w.deleting for w in workers)
    assert any(w.ready for w in workers)
    assert any(w.nnodes for w in workers)
    assert any(read_report(p) is not None for p in PODS)


@pytest.mark.parametrize("podgroup", PODGROUPS, ids=lambda p: objects.name(p))
def test_every_reading_of_a_podgroup_is_the_same_after_pruning(podgroup: JsonObject) -> None:
    pruned = prune_podgroup(podgroup)
    job = TorchJob.from_k8s(_job_owning(podgroup))
    desired = desired_podgroup(job, owner_reference(job), job_labels(job))
    assert observe_podgroup(pruned) == observe_podgroup(podgroup)
    assert podgroup_spec_patch(pruned, desired) == podgroup_spec_patch(podgroup, desired)
    assert owner_uid_index(pruned) == owner_uid_index(podgroup)
    assert objects.metadata(pruned).get("uid") == objects.metadata(podgroup).get("uid")
    assert objects.resource_version(pruned) == objects.resource_version(podgroup)
    assert "managedFields" not in pruned["metadata"]


def _job_owning(obj: JsonObject) -> JsonObject:
    uid = owner_uid_index(obj)[0]
    return next(j for j in FIXTURES["torchjobs"] if j["metadata"]["uid"] == uid)


def _owned(job: JsonObject, objs: list[JsonObject]) -> list[JsonObject]:
    return [o for o in objs if job["metadata"]["uid"] in owner_uid_index(o)]


def _statuses(job: JsonObject) -> list[JsonObject]:
    """The job as captured, and as if still Running at attempt 0 (so finished pods are judged again)."""
    running = copy.deepcopy(job)
    status = running["status"]
    status.update(phase="Running", failureRestarts=0, preemptionRestarts=0, desiredNodes=2)
    for key in ("completionTime", "disruptions", "lastDisruptionReason", "lastDisruptionTime"):
        status.pop(key, None)
    return [job, running]


@pytest.mark.parametrize("raw", FIXTURES["torchjobs"], ids=lambda j: objects.name(j))
def test_every_plan_decision_is_the_same_on_pruned_objects(raw: JsonObject) -> None:
    decided = 0
    for variant in _statuses(raw):
        job = TorchJob.from_k8s(copy.deepcopy(variant))
        pods = [p for p in _owned(raw, PODS) if not objects.metadata(p).get("deletionTimestamp")]
        groups = _owned(raw, PODGROUPS)
        pg = next((g for g in groups if objects.name(g) == podgroup_name(job)), None)
        others = [g for g in groups if g is not pg]
        for now in (datetime(2026, 11, 23, 16, 45, tzinfo=UTC), datetime(2026, 11, 24, 16, 45, tzinfo=UTC)):
            for departed in ([], [p for p in pods if observe_worker(p) is not None][:1]):
                full = plan(
                    job, pg, pods, None, now, rendezvous_objects=others, departures=Departures(departed)
                )
                pruned = plan(
                    job,
                    prune_podgroup(pg) if pg is not None else None,
                    [prune_pod(p) for p in pods],
                    None,
                    now,
                    rendezvous_objects=[prune_podgroup(g) for g in others],
                    departures=Departures([prune_pod(p) for p in departed]),
                )
                assert pruned == full
                assert observe_store(job, [prune_pod(p) for p in pods], others) == observe_store(
                    job, pods, others
                )
                decided += len(full.actions) + len(full.events)
    assert decided > 0 or objects.name(raw) == "run"  # a healthy Running job has nothing to do


@pytest.mark.parametrize("obj", [*PODS, *PODGROUPS], ids=lambda o: objects.name(o))
def test_pruning_is_idempotent_and_leaves_its_input_alone(obj: JsonObject) -> None:
    prune = prune_pod if "containers" in obj.get("spec", {}) else prune_podgroup
    before = copy.deepcopy(obj)
    once = prune(obj)
    assert obj == before
    assert prune(copy.deepcopy(once)) == once
    assert prune(once) == once


def test_pods_share_their_common_subtrees_and_keep_their_own_identity() -> None:
    running = [p for p in FIXTURES["pods"] if p["status"]["phase"] == "Running" and is_worker(p)]
    first, second = prune_pod(running[0]), prune_pod(running[1])
    assert first["status"] is second["status"]  # Running and Ready: one status for all such pods
    assert first["spec"] is second["spec"]  # same trainer node range
    assert first["metadata"]["ownerReferences"] is second["metadata"]["ownerReferences"]  # same job
    assert first["metadata"] is not second["metadata"]
    assert objects.name(first) != objects.name(second)


def test_a_pruned_pod_is_a_fraction_of_the_full_one() -> None:
    pod = FIXTURES["pods"][0]
    full, pruned = len(json.dumps(pod)), len(json.dumps(prune_pod(pod)))
    assert pruned * 5 < full, (pruned, full)
    assert "annotations" not in prune_pod(pod)["metadata"]
    assert "managedFields" not in prune_pod(pod)["metadata"]


def test_a_cache_with_the_transform_serves_pruned_copies() -> None:
    cache = Cache(prune_pod)
    cache.add_index("owner-uid", owner_uid_index)
    for pod in FIXTURES["pods"]:
        cache.upsert(cache.prepare(copy.deepcopy(pod)))
    uid = FIXTURES["torchjobs"][0]["metadata"]["uid"]
    owned = cache.by_index("owner-uid", uid)
    expected = sorted(_owned(FIXTURES["torchjobs"][0], FIXTURES["pods"]), key=cache_key)
    assert owned == [prune_pod(p) for p in expected]
    assert owned
    stored = cache.get(cache_key(FIXTURES["pods"][0]), copy=False)
    copied = cache.get(cache_key(FIXTURES["pods"][0]))
    assert stored is not None
    assert copied is not None
    assert copied == stored
    assert copied is not stored
    assert copied["metadata"] is not stored["metadata"]


def cache_key(obj: JsonObject) -> str:
    return f"{objects.namespace(obj)}/{objects.name(obj)}"


def test_a_malformed_pod_is_stored_unshared_not_refused() -> None:
    pod = copy.deepcopy(FIXTURES["pods"][0])
    pod["metadata"]["ownerReferences"][0]["uid"] = {"not": "a string"}
    pod["status"]["reason"] = ["odd"]
    pruned = prune_pod(pod)
    assert pruned["metadata"]["ownerReferences"][0]["uid"] == {"not": "a string"}
    assert pruned["status"]["reason"] == ["odd"]
