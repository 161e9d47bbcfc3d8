"""`pyroclast job submit`'s pure half: TorchJobs from flags and YAML, errors that name the flag."""

from __future__ import annotations

import pytest

from pyroclast.jobspec import JobSpecError, build_job, jobs_from_yaml, parse_env, parse_nproc, submit_manifest


def test_flags_become_the_spec_and_leave_the_rest_to_the_api_defaults() -> None:
    job = build_job(
        "ft",
        image="ghcr.io/x/train:1",
        command=["-m", "train", "--steps", "5"],
        namespace="research",
        min_nodes=2,
        max_nodes=8,
        nproc=parse_nproc("4"),
        gpus=4,
        cpu="16",
        memory="64Gi",
        queue="team-a",
        priority_class="high",
        preemptible=True,
        env=["NCCL_DEBUG=INFO", "X=a=b", "NCCL_DEBUG=WARN"],
        suspend=True,
    )
    wire = submit_manifest(job, "research")
    assert wire["metadata"] == {"name": "ft", "namespace": "research"}
    assert wire["spec"] == {
        "image": "ghcr.io/x/train:1",
        "command": ["-m", "train", "--steps", "5"],
        "nodes": {"count": 8, "min": 2, "max": 8},
        "nprocPerNode": 4,
        "resources": {"requests": {"cpu": "16", "memory": "64Gi"}, "limits": {"nvidia.com/gpu": 4}},
        "scheduling": {"queue": "team-a", "priorityClassName": "high", "preemptible": True},
        "env": [{"name": "NCCL_DEBUG", "value": "WARN"}, {"name": "X", "value": "a=b"}],
        "runPolicy": {"suspend": True},
    }
    plain = submit_manifest(build_job("p", image="i", command=["t.py"]), "default")
    assert plain["spec"] == {"image": "i", "command": ["t.py"]}
    assert parse_nproc("gpu") == "gpu"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": None}, "--image is required"),
        (
            {"image": None, "runtime": "Runtime/gpu"},
            "--runtime 'Runtime/gpu': the kind is ClusterTorchRuntime",
        ),
        ({"command": []}, "put what torchrun runs after --"),
        ({"min_nodes": 2}, "--min-nodes and --max-nodes go together"),
        ({"cpu": "lots"}, "--cpu: 'lots' is not a quantity"),
        ({"nproc": "many"}, "spec.nprocPerNode (--nproc)"),
        ({"nodes": 9, "min_nodes": 1, "max_nodes": 4}, "nodes.count must be less than or equal to nodes.max"),
        ({"env": ["PET_NNODES=3"]}, "env PET_NNODES is reserved"),
        ({"env": ["oops"]}, "--env: 'oops' is not NAME=VALUE"),
        ({"command": ["torchrun", "x.py"]}, "do not start it with torchrun or python"),
        ({"queue": "Team_A"}, "spec.scheduling.queue (--queue): must be lowercase letters, digits and '-'"),
        ({"priority_class": "High"}, "priorityClassName (--priority-class): must be lowercase letters"),
        ({"gpus": -1}, "spec.resources.limits.nvidia.com/gpu (--gpus): must be at least 0, got -1"),
        ({"nodes": 0}, "spec.nodes.count (--nodes): must be at least 1, got 0"),
    ],
)
def test_bad_flags_name_the_flag(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"image": "i", "command": ["t.py"], **kwargs}
    with pytest.raises(JobSpecError) as exc:
        build_job("ft", **args)  # type: ignore[arg-type]
    assert message in str(exc.value)
    assert exc.value.exit_code == 2
    # Never pydantic's own vocabulary: union member names, "Value error", the bare regular expression.
    for internal in ("constrained-", "function-", "Value error", "valid string", "should match pattern"):
        assert internal not in str(exc.value)


def test_a_runtime_stands_in_for_the_image() -> None:
    wire = submit_manifest(build_job("r", image=None, command=["t.py"], runtime="a100-ib"), "default")
    assert wire["spec"] == {
        "command": ["t.py"],
        "runtimeRef": {"kind": "ClusterTorchRuntime", "name": "a100-ib"},
    }
    job = build_job("r", image="mine:1", command=["t.py"], runtime="TorchRuntime/team")
    assert submit_manifest(job, "default")["spec"]["runtimeRef"] == {"kind": "TorchRuntime", "name": "team"}
    assert submit_manifest(job, "default")["spec"]["image"] == "mine:1"


def test_yaml_documents_become_jobs_and_other_kinds_are_refused() -> None:
    text = """\
apiVersion: pyroclast.dev/v1alpha1
kind: TorchJob
metadata: {name: a, namespace: ns1}
spec: {image: i, command: [t.py], nodes: {count: 2}}
status: {phase: Running}
---
kind: TorchJob
metadata: {generateName: sweep-}
spec: {image: i, command: [t.py]}
"""
    jobs = jobs_from_yaml(text, source="jobs.yaml")
    assert [(j.metadata.name, j.metadata.generate_name) for j in jobs] == [("a", None), (None, "sweep-")]
    assert jobs[0].status is None  # status is the operator's, never submitted
    assert submit_manifest(jobs[1], "ns2")["metadata"] == {"generateName": "sweep-", "namespace": "ns2"}
    for bad, message in (
        ("kind: Pod\nmetadata: {name: a}\n", "jobs.yaml document 1: kind is 'Pod'"),
        ("kind: TorchJob\nspec: {image: i, command: [t.py]}\n", "metadata.name (or generateName)"),
        ("kind: TorchJob\nmetadata: {name: a}\nspec: {image: i, command: [t.py], nodes: {count: 0}}\n",
         "spec.nodes.count (--nodes): must be at least 1, got 0"),
        ("- a\n", "expected a TorchJob mapping, got list"),
        ("a: [\n", "not valid YAML"),
        ("", "holds no TorchJob documents"),
    ):  # fmt: skip
        with pytest.raises(JobSpecError) as exc:
            jobs_from_yaml(bad, source="jobs.yaml")
        assert message in str(exc.value)


def test_env_keeps_values_with_equals_signs() -> None:
    assert parse_env(["A=", "B=x=y"]) == [{"name": "A", "value": ""}, {"name": "B", "value": "x=y"}]
