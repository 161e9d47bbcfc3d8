"""`pyroclast queue` against the local cluster: every command round-tripped through the apiserver, and the
state Volcano's queue-controller reports after open/close."""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from api.queue import Queue, QueueState
from controller.runtime.objects import JsonObject
from controller.torchjob.kinds import QUEUES, TORCHJOBS
from e2e import torchjobs as lifecycle
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import torchjob
from pyroclast.queues import QueueAdmin
from scheduling.queues import allocation, build_queue

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def pq(cli: Run) -> Run:
    """`pyroclast queue VERB ARGS...` in process: (exit code, stdout, stderr)."""
    return functools.partial(cli, "queue")


def queue_json(cluster: Cluster, name: str) -> JsonObject | None:
    """The Queue as the apiserver holds it, or None."""
    got = cluster.kubectl("get", "queue", name, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def wait_state(cluster: Cluster, name: str, state: str, within: float = 30.0) -> None:
    """Poll until the queue-controller reports `state`."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = cluster.queue_state(name)
        if last == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"queue {name} is {last}, never {state}")


def wait_for_spec(cluster: Cluster, name: str, field: str, value: object, within: float = 30.0) -> None:
    """Poll until the queue's spec.<field> is `value`."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = ((queue_json(cluster, name) or {}).get("spec") or {}).get(field)
        if last == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"queue {name} spec.{field} is {last!r}, never {value!r}")


def test_create_get_update_delete(cluster: Cluster, pq: Run, qname: str) -> None:
    code, out, err = pq(
        "create", qname, "-w", "3", "--capability", "cpu=8,memory=32Gi", "--capability", "nvidia.com/gpu=4",
        "--guarantee", "cpu=1", "--no-reclaimable", "--priority", "2",
    )  # fmt: skip
    assert (code, out.strip(), err) == (0, f"queue/{qname} created", "")
    held = queue_json(cluster, qname)
    assert held is not None
    spec = held["spec"]
    assert spec["weight"] == 3
    assert spec["capability"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4"}
    assert spec["guarantee"] == {"resource": {"cpu": "1"}}
    assert spec["reclaimable"] is False
    assert spec["priority"] == 2
    wait_state(cluster, qname, "Open")

    code, out, _ = pq("get", qname, "-o", "json")
    assert code == 0
    got = json.loads(out)
    assert got["spec"]["capability"] == spec["capability"]
    assert got["status"]["state"] == "Open"
    assert got["metadata"]["uid"] == held["metadata"]["uid"]

    code, out, _ = pq("get", qname, "-o", "yaml")
    assert code == 0
    assert f"name: {qname}" in out
    assert "nvidia.com/gpu: '4'" in out

    code, out, _ = pq("get", qname)
    lines = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert code == 0
    assert lines["State"].strip() == "Open"
    assert lines["Weight"].strip() == "3"
    assert lines["Reclaimable"].strip() == "no"
    assert lines["Capability"].strip() == "cpu=8, memory=32Gi, nvidia.com/gpu=4"

    code, out, _ = pq("update", qname, "--weight", "5", "--capability", "nvidia.com/gpu=8", "--reclaimable")
    assert (code, out.strip()) == (0, f"queue/{qname} updated")
    spec = (queue_json(cluster, qname) or {})["spec"]
    assert spec["weight"] == 5
    assert spec["capability"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "8"}
    assert spec["reclaimable"] is True

    code, _, err = pq("update", qname)
    assert code == 2
    assert "nothing to update" in err

    code, _, err = pq("create", qname)
    assert code == 4
    assert "already exists" in err

    code, out, _ = pq("delete", qname)
    assert (code, out.strip()) == (0, f"queue/{qname} deleted")
    gone = cluster.kubectl("get", "queue", qname, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr


def test_errors_name_the_problem(cluster: Cluster, pq: Run, qname: str) -> None:
    for verb, extra in (("get", ()), ("update", ("-w", "2")), ("close", ()), ("open", ()), ("delete", ())):
        code, _, err = pq(verb, qname, *extra)
        assert code == 3, (verb, err)
        assert f"queue {qname} not found" in err
    code, _, err = pq("create", qname, "--capability", "nvidia.com/gpu=lots")
    assert code == 2
    assert "--capability" in err
    assert "nvidia.com/gpu" in err
    assert queue_json(cluster, qname) is None
    code, _, err = pq("create", qname, "-w", "0")
    assert code == 2
    assert "weight" in err
    code, _, err = pq("delete", "default")
    assert code == 4
    assert "cannot be deleted" in err
    assert cluster.queue_state("default") == "Open"


def test_close_and_open_reach_the_state_volcano_reports(cluster: Cluster, pq: Run, qname: str) -> None:
    assert pq("create", qname)[0] == 0
    wait_state(cluster, qname, "Open")

    code, out, err = pq("close", qname)
    assert code == 0, err
    assert f"queue/{qname} Closed" in out
    assert "admits no new jobs" in out
    # What the queue-controller wrote, read straight from the apiserver.
    assert cluster.queue_state(qname) == "Closed"
    code, out, _ = pq("get", qname, "-o", "json")
    assert json.loads(out)["status"]["state"] == "Closed"

    code, out, err = pq("open", qname)
    assert (code, out.strip()) == (0, f"queue/{qname} Open"), err
    assert cluster.queue_state(qname) == "Open"


def test_close_drains_while_podgroups_remain(cluster: Cluster, pq: Run, qname: str, namespace: str) -> None:
    assert pq("create", qname)[0] == 0
    wait_state(cluster, qname, "Open")
    podgroup = {
        "apiVersion": "scheduling.volcano.sh/v1beta1",
        "kind": "PodGroup",
        "metadata": {"name": "pg", "namespace": namespace},
        "spec": {"minMember": 1, "queue": qname},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(podgroup))
    # Let Volcano's informers catch up: once vc-scheduler has given the PodGroup a phase, the
    # queue-controller (same apiserver watch) has seen it too, so the close below finds it.
    deadline = time.monotonic() + 30
    while not cluster.kubectl(
        "get", "podgroup", "pg", "-n", namespace, "-o", "jsonpath={.status.phase}"
    ).stdout:
        assert time.monotonic() < deadline, "vc-scheduler never gave the PodGroup a phase"
        time.sleep(0.2)

    code, out, err = pq("close", qname)
    assert code == 0, err
    assert f"queue/{qname} Closing" in out
    assert "becomes Closed when the last one is gone" in out
    assert cluster.queue_state(qname) == "Closing"

    cluster.kubectl("delete", "podgroup", "pg", "-n", namespace)
    wait_state(cluster, qname, "Closed", within=60)


def test_list_counts_jobs_and_delete_refuses_while_used(
    cluster: Cluster, crd: str, pq: Run, qname: str, namespace: str
) -> None:
    code, _, err = pq("create", qname, "--capability", "cpu=4,nvidia.com/gpu=2")
    assert code == 0, err
    wait_state(cluster, qname, "Open")
    for job in ("a", "b", "c", "d"):
        cluster.kubectl(
            "create",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(torchjob(job, None, count=1, cpu=None, scheduling={"queue": qname})),
        )
    # No operator runs here: set the phases the operator would have written. A finished job (d) holds nothing:
    # it is neither counted nor does it keep the queue from being deleted.
    for job, phase in (("a", "Running"), ("b", "Queued"), ("d", "Succeeded")):
        cluster.kubectl(
            "patch", "torchjob", job, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": phase}}),
        )  # fmt: skip

    code, out, _ = pq("list", "-o", "json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows[qname]["running"] == 1
    assert rows[qname]["pending"] == 2  # b is Queued, c has no phase yet
    assert rows[qname]["state"] == "Open"
    assert rows[qname]["resources"] == "cpu 0/4, nvidia.com/gpu 0/2"
    assert rows["default"]["state"] == "Open"
    assert set(rows) >= {"default", "root", qname}

    code, out, _ = pq("list")
    line = next(ln for ln in out.splitlines() if ln.startswith(qname))
    assert line.split()[:2] == [qname, "Open"]
    assert line.split()[-2:] == ["1", "2"]
    assert out.splitlines()[0].split()[:2] == ["NAME", "STATE"]

    code, _, err = pq("delete", qname)
    assert code == 4
    assert f"used by 3 TorchJob(s): {namespace}/a, {namespace}/b, {namespace}/c" in err
    assert "--force" in err
    assert queue_json(cluster, qname) is not None

    code, out, err = pq("delete", qname, "--force")
    assert code == 0
    assert f"queue/{qname} deleted" in out
    assert f"{namespace}/a" in err
    assert queue_json(cluster, qname) is None


def strs(resources: JsonObject) -> dict[str, str]:
    """Quantities as strings: YAML `8` is stored as the integer 8 (int-or-string)."""
    return {k: str(v) for k, v in resources.items()}


def test_apply_is_idempotent(cluster: Cluster, pq: Run, tmp_path: Path) -> None:
    names = [f"q-{secrets.token_hex(4)}" for _ in range(2)]
    doc = """\
apiVersion: scheduling.volcano.sh/v1beta1
kind: Queue
metadata: {{name: {a}}}
spec:
  weight: {w}
  capability: {{cpu: "16", memory: 64Gi, nvidia.com/gpu: 8}}
  guarantee: {{resource: {{nvidia.com/gpu: 2}}}}
---
apiVersion: scheduling.volcano.sh/v1beta1
kind: Queue
metadata: {{name: {b}}}
spec:
  reclaimable: false
"""
    path = tmp_path / "queues.yaml"
    try:
        path.write_text(doc.format(a=names[0], b=names[1], w=2))
        code, out, err = pq("apply", "-f", str(path))
        assert code == 0, err
        assert out.splitlines() == [f"queue/{names[0]} created", f"queue/{names[1]} created"]
        wait_state(cluster, names[0], "Open")
        wait_state(cluster, names[1], "Open")
        held = queue_json(cluster, names[0]) or {}
        assert strs(held["spec"]["capability"]) == {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "8"}
        assert strs(held["spec"]["guarantee"]["resource"]) == {"nvidia.com/gpu": "2"}
        # The queue-controller writes `parent: root` onto queues created without one; apply must not fight it.
        for n in names:
            wait_for_spec(cluster, n, "parent", "root")
        # Volcano writes status (which moves resourceVersion) at will; generation moves only with spec writes.
        generations = [(queue_json(cluster, n) or {})["metadata"]["generation"] for n in names]

        code, out, err = pq("apply", "-f", str(path))
        assert code == 0, err
        assert out.splitlines() == [f"queue/{names[0]} unchanged", f"queue/{names[1]} unchanged"]
        assert [(queue_json(cluster, n) or {})["metadata"]["generation"] for n in names] == generations

        path.write_text(doc.format(a=names[0], b=names[1], w=7).replace("memory: 64Gi, ", ""))
        code, out, err = pq("apply", "-f", str(path))
        assert code == 0, err
        assert out.splitlines() == [f"queue/{names[0]} configured", f"queue/{names[1]} unchanged"]
        spec = (queue_json(cluster, names[0]) or {})["spec"]
        assert spec["weight"] == 7
        assert strs(spec["capability"]) == {"cpu": "16", "nvidia.com/gpu": "8"}

        path.write_text("kind: Queue\nmetadata: {name: x}\nspec: {weight: many}\n")
        code, _, err = pq("apply", "-f", str(path))
        assert code == 2
        assert "spec.weight" in err
    finally:
        for n in names:
            cluster.kubectl("delete", "queue", n, "--ignore-not-found", "--wait=false", check=False)


async def test_list_numbers_match_what_volcano_schedules(
    cluster: Cluster, crd: str, pq: Run, qname: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    code, _, err = await anyio.to_thread.run_sync(pq, "create", qname, "--capability", "cpu=6")
    assert code == 0, err
    wait_state(cluster, qname, "Open")
    async with lifecycle.operator(cluster) as client:
        body = torchjob("gang", nodes, count=2, cpu="1", scheduling={"queue": qname})
        await client.create(TORCHJOBS, body, namespace)
        await lifecycle.wait_phase(client, namespace, "gang", "Running")

        async def allocated_cpu() -> JsonObject | None:
            held = await client.get(QUEUES, qname)
            got = (held.get("status") or {}).get("allocated") or {}
            return held if str(got.get("cpu")) in ("2", "2k", "2000m") else None

        # vc-scheduler writes status.allocated every session: the gang's 2 x 1 cpu.
        held = await lifecycle.wait_for("Volcano's allocated cpu 2", allocated_cpu, within=30)
        code, out, err = await anyio.to_thread.run_sync(pq, "list", "-o", "json")
        assert code == 0, err
        row = next(r for r in json.loads(out) if r["name"] == qname)
        assert row["resources"].startswith("cpu 2/6")
        assert row["resources"] == allocation(Queue.model_validate(held))
        assert (row["running"], row["pending"]) == (1, 0)


def test_sync_sdk_round_trip(cluster: Cluster, qname: str) -> None:
    assert cluster.api is not None
    admin = QueueAdmin(cluster.kubeconfig)

    created = admin.create(build_queue(qname, weight=4, capability={"nvidia.com/gpu": "2"}))
    assert created.metadata.uid == (queue_json(cluster, qname) or {})["metadata"]["uid"]
    wait_state(cluster, qname, "Open")
    assert admin.get(qname).spec.capability == {"nvidia.com/gpu": "2"}
    assert qname in [q.metadata.name for q in admin.list()]
    closed = admin.close(qname)
    assert closed.status is not None
    assert closed.status.state is QueueState.CLOSED
    assert cluster.queue_state(qname) == "Closed"
    opened = admin.open(qname)
    assert opened.status is not None
    assert opened.status.state is QueueState.OPEN
    assert admin.delete(qname) == []
    assert queue_json(cluster, qname) is None
