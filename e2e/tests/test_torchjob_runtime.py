"""Runtimes on a real apiserver: admission of ClusterTorchRuntime/TorchRuntime, a job resolved against one
gets its env, volumes and tolerations on its pods, keeps them when the runtime is edited afterwards, is
refused when it overrides a locked field, and waits (saying so) for a runtime that does not exist yet."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from api.runtime import RuntimeKind
from controller.runtime.client import Client
from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS, PODS
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.runtime import RUNTIMES
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.torchjobs import condition, operator, status_of, torchjob, wait_for
from tests.api.api_cases import INVALID_RUNTIME_CASES, InvalidRuntimeCase, base_runtime

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "examples" / "runtime-nccl.yaml"
CLUSTER_RUNTIMES = RUNTIMES[RuntimeKind.CLUSTER]
CliRun = Callable[..., tuple[int, str, str]]


async def in_thread(cli: CliRun, *argv: str) -> tuple[int, str, str]:
    """The CLI runs its own event loop: off this test's loop."""
    return await anyio.to_thread.run_sync(lambda: cli(*argv))


@pytest.fixture
def cluster_runtimes(cluster: Cluster) -> Iterator[list[str]]:
    """Names of ClusterTorchRuntimes a test creates (cluster-scoped: deleted after it)."""
    created: list[str] = []
    yield created
    for name in created:
        cluster.kubectl("delete", "clustertorchruntime", name, "--ignore-not-found", check=False)


def _runtime(name: str, pool: NodePool, *, locked: list[str] | None = None) -> JsonObject:
    doc = base_runtime(name)
    defaults = doc["spec"]["defaults"]
    defaults["image"] = "example.invalid/train:1"
    defaults["scheduling"] = {"queue": "default"}
    tpl = defaults["template"]["spec"]
    tpl["nodeSelector"] = dict(pool.node_selector)
    tpl["volumes"] = [{"name": "datasets", "emptyDir": {}}]
    doc["spec"]["locked"] = (
        locked if locked is not None else ["env[NCCL_IB_HCA]", "template.spec.tolerations"]
    )
    return doc


def _job(name: str, runtime: str, pool: NodePool, **spec: Any) -> JsonObject:
    doc = torchjob(name, pool, runtimeRef={"kind": "ClusterTorchRuntime", "name": runtime}, **spec)
    del doc["spec"]["image"]  # the runtime's
    del doc["spec"]["template"]["spec"]  # the runtime's node selector pins the pods to the pool
    return doc


def _applied(cluster: Cluster, namespace: str, pool: NodePool, created: list[str]) -> str:
    """A ClusterTorchRuntime for this test (`_runtime`), applied; its name."""
    name = f"rt-{namespace}"
    created.append(name)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(_runtime(name, pool)))
    return name


async def _pods(client: Client, namespace: str, count: int) -> list[JsonObject]:
    async def probe() -> list[JsonObject] | None:
        pods = (await client.list(PODS, namespace)).items
        live = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
        return live if len(live) == count else None

    return await wait_for(f"{count} worker pods", probe, 60)


def _trainer(pod: JsonObject) -> JsonObject:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "trainer")


def _env(pod: JsonObject) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _trainer(pod).get("env", [])}


async def _resolved(client: Client, namespace: str, name: str) -> JsonObject:
    async def probe() -> JsonObject | None:
        status = await status_of(client, namespace, name)
        cond = condition(status, "RuntimeResolved")
        return status if cond is not None and cond["status"] == "True" and status.get("runtime") else None

    return await wait_for(f"{name} resolved", probe, 60)


async def _unresolved(client: Client, namespace: str, name: str, reason: str) -> JsonObject:
    async def probe() -> JsonObject | None:
        cond = condition(await status_of(client, namespace, name), "RuntimeResolved")
        return cond if cond is not None and cond["status"] == "False" and cond["reason"] == reason else None

    return await wait_for(f"{name} RuntimeResolved=False/{reason}", probe, 60)


@pytest.mark.parametrize("case", INVALID_RUNTIME_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("kind", ["ClusterTorchRuntime", "TorchRuntime"])
def test_invalid_runtime_is_rejected_with_a_useful_message(
    cluster: Cluster, crd: str, namespace: str, case: InvalidRuntimeCase, kind: str
) -> None:
    args = ["create", "-n", namespace, "-f", "-", "--dry-run=server"]
    proc = cluster.kubectl(*args, input=json.dumps(case.manifest(kind)), check=False)
    assert proc.returncode != 0, f"{case.id} was admitted"
    for text in case.expect:
        assert text in proc.stderr, f"{case.id}: {text!r} not in {proc.stderr!r}"


def test_runtime_stores_as_written_without_defaults(cluster: Cluster, crd: str, namespace: str) -> None:
    """Nothing is defaulted into a runtime's defaults: a server-filled value would hide the job's own."""
    doc = base_runtime("stored", kind="TorchRuntime")
    proc = cluster.kubectl("create", "-n", namespace, "-f", "-", "-o", "json", input=json.dumps(doc))
    assert json.loads(proc.stdout)["spec"] == doc["spec"]
    listed = cluster.kubectl("get", "torchruntimes", "-n", namespace).stdout.splitlines()
    assert listed[0].split()[:4] == ["NAME", "IMAGE", "QUEUE", "LOCKED"]


async def test_a_job_gets_its_runtime_and_keeps_it_when_the_runtime_changes(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, cluster_runtimes: list[str]
) -> None:
    nodes(3, cpu="4")
    runtime = _applied(cluster, namespace, nodes, cluster_runtimes)
    async with operator(cluster) as client:
        job = _job("ft", runtime, nodes, env=[{"name": "NCCL_DEBUG", "value": "INFO"}])
        await client.create(TORCHJOBS, job, namespace)
        status = await _resolved(client, namespace, "ft")
        record = status["runtime"]
        assert (record["kind"], record["name"], record["generation"]) == ("ClusterTorchRuntime", runtime, 1)
        pods = await _pods(client, namespace, 2)
        for pod in pods:
            env = _env(pod)
            assert env["NCCL_IB_HCA"] == "mlx5"  # the runtime's
            assert env["NCCL_DEBUG"] == "INFO"  # the job's own value wins where not locked
            assert pod["spec"]["containers"][0]["image"] == "example.invalid/train:1"
            assert {"name": "datasets", "emptyDir": {}} in pod["spec"]["volumes"]
            assert {"name": "datasets", "mountPath": "/datasets", "readOnly": True} in _trainer(pod)[
                "volumeMounts"
            ]
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
                "tolerations"
            ]
            assert pod["spec"]["nodeSelector"].items() >= nodes.node_selector.items()
        table = cluster.kubectl("get", "tj", "ft", "-n", namespace).stdout.splitlines()
        at = table[0].index("RUNTIME")  # columns are aligned; empty ones (no checkpoint yet) are blank
        assert table[1][at:].split()[0] == runtime

        # The platform team edits the runtime: the running job does not change, even when it is rebuilt.
        edited = _runtime(runtime, nodes)
        edited["spec"]["defaults"]["env"][0]["value"] = "mlx4"
        edited["spec"]["defaults"]["template"]["spec"]["tolerations"] = []
        cluster.kubectl("apply", "-f", "-", input=json.dumps(edited))
        generation = json.loads(cluster.kubectl("get", "clustertorchruntime", runtime, "-o", "json").stdout)[
            "metadata"
        ]["generation"]
        assert generation == 2
        await client.patch(TORCHJOBS, "ft", {"spec": {"nodes": {"count": 3}}}, namespace)  # a new gang of 3

        async def regrown() -> list[JsonObject] | None:
            pods = (await client.list(PODS, namespace)).items
            fresh = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
            return fresh if len(fresh) == 3 else None

        rebuilt = await wait_for("the job's 3 pods", regrown, 90)
        for pod in rebuilt:
            assert _env(pod)["NCCL_IB_HCA"] == "mlx5"
            toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            assert toleration in pod["spec"].get("tolerations", [])
        after = await status_of(client, namespace, "ft")
        assert after["runtime"]["hash"] == record["hash"]
        assert after["runtime"]["generation"] == 1
        assert after["runtime"]["spec"] == record["spec"]


async def test_a_locked_field_override_is_refused_with_the_condition(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool, cluster_runtimes: list[str]
) -> None:
    nodes(2, cpu="4")
    runtime = _applied(cluster, namespace, nodes, cluster_runtimes)
    async with operator(cluster) as client:
        job = _job("locked", runtime, nodes, env=[{"name": "NCCL_IB_HCA", "value": "mlx4"}])
        await client.create(TORCHJOBS, job, namespace)
        cond = await _unresolved(client, namespace, "locked", "RuntimeFieldLocked")
        assert f"spec.env[NCCL_IB_HCA] is locked by ClusterTorchRuntime/{runtime}" in cond["message"]
        assert "remove spec.env[NCCL_IB_HCA] from the job" in cond["message"]
        selector = "involvedObject.kind=TorchJob,involvedObject.name=locked,type=Warning"

        async def warned() -> list[JsonObject]:
            return (await client.list(EVENTS, namespace, field_selector=selector)).items

        events = await wait_for("the Warning event", warned, 30)
        assert [(e["reason"], e["message"]) for e in events] == [("RuntimeFieldLocked", cond["message"])]
        assert (await client.list(PODS, namespace)).items == []
        assert "runtime" not in await status_of(client, namespace, "locked")

        # The job drops the override: it is resolved and runs.
        await client.patch(
            TORCHJOBS, "locked", {"spec": {"env": [{"name": "OTHER", "value": "1"}]}}, namespace
        )
        await _resolved(client, namespace, "locked")
        pods = await _pods(client, namespace, 2)
        assert all(_env(p)["NCCL_IB_HCA"] == "mlx5" for p in pods)


async def test_a_missing_runtime_is_reported_and_retried(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with operator(cluster) as client:
        job = torchjob("waits", nodes, runtimeRef={"kind": "TorchRuntime", "name": "later"})
        del job["spec"]["image"]
        await client.create(TORCHJOBS, job, namespace)
        cond = await _unresolved(client, namespace, "waits", "RuntimeNotFound")
        assert f"TorchRuntime later does not exist in namespace {namespace}" in cond["message"]
        assert "retried with backoff" in cond["message"]
        assert (await status_of(client, namespace, "waits"))["phase"] == "Pending"
        described = cluster.kubectl("describe", "tj", "waits", "-n", namespace).stdout
        assert "RuntimeNotFound" in described

        runtime = _runtime("later", nodes, locked=[])
        runtime["kind"] = "TorchRuntime"
        await client.create(RUNTIMES[RuntimeKind.NAMESPACED], runtime, namespace)
        status = await _resolved(client, namespace, "waits")
        assert status["runtime"]["kind"] == "TorchRuntime"
        pods = await _pods(client, namespace, 2)
        assert all(_env(p)["NCCL_IB_HCA"] == "mlx5" for p in pods)


async def test_the_readme_runtime_example_applies_and_resolves(
    cluster: Cluster, crd: str, namespace: str, cluster_runtimes: list[str]
) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    runtime, job = docs
    cluster_runtimes.append(runtime["metadata"]["name"])
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    async with operator(cluster) as client:
        status = await _resolved(client, namespace, job["metadata"]["name"])
        assert status["runtime"]["name"] == "a100-ib"
        pods = await _pods(client, namespace, 2)
        for pod in pods:
            env = _env(pod)
            assert (env["NCCL_IB_HCA"], env["NCCL_DEBUG"], env["DATA_DIR"]) == (
                "mlx5",
                "INFO",
                "/datasets/llama",
            )
            volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
            assert volumes["datasets"]["persistentVolumeClaim"] == {"claimName": "datasets", "readOnly": True}
            assert pod["spec"]["containers"][0]["image"] == runtime["spec"]["defaults"]["image"]
        assert (await client.get(CLUSTER_RUNTIMES, "a100-ib"))["spec"] == runtime["spec"]


async def test_cli_lists_gets_and_submits_with_a_runtime(
    cluster: Cluster, crd: str, namespace: str, cli: CliRun, cluster_runtimes: list[str]
) -> None:
    runtime = f"rt-{namespace}"
    cluster_runtimes.append(runtime)
    doc = base_runtime(runtime)
    doc["spec"]["defaults"]["scheduling"] = {"queue": "default"}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))
    team = base_runtime("team", kind="TorchRuntime")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(team))

    code, out, _ = await in_thread(cli, "runtime", "list", "-n", namespace)
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["KIND", "NAME", "NAMESPACE", "IMAGE", "QUEUE", "LOCKED"]
    assert ["ClusterTorchRuntime", runtime, "-", "ghcr.io/example/train:1.0", "default"] in [
        r[:5] for r in rows
    ]
    assert ["TorchRuntime", "team", namespace, "ghcr.io/example/train:1.0", "gpu"] in [r[:5] for r in rows]
    code, out, _ = await in_thread(cli, "runtime", "get", "TorchRuntime/team", "-n", namespace)
    assert code == 0
    assert yaml.safe_load(out)["spec"] == team["spec"]
    code, _, err = await in_thread(cli, "runtime", "get", "nope")
    assert code == 3
    assert "ClusterTorchRuntime nope does not exist" in err

    # The CLI merges before submitting: a locked field is refused at once, naming it.
    argv = ["job", "submit", "ft", "-n", namespace, "--runtime", runtime]
    code, _, err = await in_thread(cli, *argv, "--env", "NCCL_IB_HCA=mlx4", "--", "-m", "train")
    assert code == 4
    assert f"spec.env[NCCL_IB_HCA] is locked by ClusterTorchRuntime/{runtime}" in err
    code, out, err = await in_thread(cli, *argv, "--env", "NCCL_DEBUG=INFO", "--", "-m", "train")
    assert code == 0, err
    assert f"torchjob/ft submitted with ClusterTorchRuntime {runtime}" in out
    stored = json.loads(cluster.kubectl("get", "tj", "ft", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["runtimeRef"] == {"kind": "ClusterTorchRuntime", "name": runtime}
    assert "image" not in stored["spec"]
