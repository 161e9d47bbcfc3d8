"""Hypothesis strategies for TorchJob manifests: mostly valid values, invalid ones mixed in at every level.

The same strategy feeds the unit tests (model round trips, defaults) and the cluster test that compares the
apiserver's verdict with the models' verdict.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

Draw = st.DrawFn


def _mix(good: list[Any], bad: list[Any], bad_in: int = 20) -> st.SearchStrategy[Any]:
    """Draw from `bad` about once in `bad_in` draws, from `good` otherwise."""
    pick_bad = st.sampled_from([False] * (bad_in - 1) + [True])
    return pick_bad.flatmap(lambda is_bad: st.sampled_from(bad if is_bad else good))


DURATIONS = _mix(
    [
        "0s",
        "1s",
        "2s",
        "5s",
        "10s",
        "30s",
        "90s",
        "1m",
        "5m",
        "10m",
        "1h",
        "1h30m",
        "2h",
        "24h",
        "250ms",
        "0.5s",
    ],
    ["", "5", "-1s", "1d", "1 h", "10M", "abc", "168h1s", "25h"],
)
QUANTITIES = _mix(
    [0, 1, 2, 4, 8, "1", "2", "500m", "1500m", "1.5", "2Gi", "4Gi", "512Mi", "1e3", "100M"],
    ["lots", "-1", "1.2.3", "Gi", -1],
)
ENV_NAMES = _mix(
    ["A", "NCCL_DEBUG", "my.var", "_X", "OMP_NUM_THREADS", "HF_HOME"],
    [
        "PET_NNODES",
        "PET_",
        "RANK",
        "WORLD_SIZE",
        "TORCHELASTIC_RUN_ID",
        "PYROCLAST_CHECKPOINT_DIR",
        "1A",
        "A=B",
    ],
)
DNS_LABELS = _mix(["default", "team-a", "q1", "a"], ["Team", "a_b", "-x", "x" * 64])
COUNTS = _mix([1, 2, 3, 4, 8], [0, -1, 4097])
EXIT_CODES = _mix([1, 2, 75, 137, 143, 255], [0, 256])
BOOLS = _mix([True, False], ["yes"])
# Hypothesis draws small integers far more often than uniform; a sampled list gives a steady 1-in-20 miss.
USUALLY = st.sampled_from([True] * 19 + [False])


@st.composite
def env_lists(draw: Draw) -> list[dict[str, Any]]:
    """A short env list; names may repeat or be reserved, value and valueFrom may collide."""
    out: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        item: dict[str, Any] = {"name": draw(ENV_NAMES)}
        choice = draw(st.sampled_from(["value", "value", "from", "both", "none"]))
        if choice in ("value", "both"):
            item["value"] = draw(st.sampled_from(["1", "x", ""]))
        if choice in ("from", "both"):
            item["valueFrom"] = {"fieldRef": {"fieldPath": "metadata.name"}}
        out.append(item)
    return out


@st.composite
def resources(draw: Draw) -> dict[str, Any]:
    """Requests and limits over a few resource names; requests may exceed limits."""
    keys = ["cpu", "memory", "nvidia.com/gpu"]
    out: dict[str, Any] = {}
    for part in ("requests", "limits"):
        if draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
            out[part] = {k: draw(QUANTITIES) for k in chosen}
    return out


@st.composite
def nodes(draw: Draw) -> dict[str, Any]:
    """Fixed or elastic node counts, with min/max sometimes alone or out of order."""
    out: dict[str, Any] = {}
    if draw(USUALLY):
        out["count"] = draw(COUNTS)
    shape = draw(st.sampled_from(["fixed", "fixed", "elastic", "elastic", "min-only", "max-only"]))
    if shape in ("elastic", "min-only"):
        out["min"] = draw(COUNTS)
    if shape in ("elastic", "max-only"):
        out["max"] = draw(COUNTS)
    return out


@st.composite
def rendezvous(draw: Draw) -> dict[str, Any]:
    """A subset of the rendezvous settings."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "joinTimeout": DURATIONS,
        "lastCallTimeout": DURATIONS,
        "closeTimeout": DURATIONS,
        "readTimeout": DURATIONS,
        "keepAliveInterval": DURATIONS,
        "keepAliveMaxAttempts": _mix([1, 3, 10, 100], [0, 101]),
        "maxRestarts": _mix([0, 3, 100], [-1, 1001]),
        "port": _mix([29400, 1024, 65535], [80, 65536]),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=3))
    return {k: draw(fields[k]) for k in chosen}


@st.composite
def checkpoint(draw: Draw) -> dict[str, Any]:
    """A checkpoint block; the volume may be missing, empty or ambiguous."""
    out: dict[str, Any] = {}
    volume = draw(
        _mix(
            [{"emptyDir": {}}, {"persistentVolumeClaim": {"claimName": "ckpt"}}],
            [None, {}, {"emptyDir": {}, "hostPath": {"path": "/x"}}],
        )
    )
    if volume is not None:
        out["volume"] = volume
    if draw(st.booleans()):
        out["path"] = draw(_mix(["/checkpoints", "/mnt/ckpt"], ["ckpt", "/a:b", ""]))
    if draw(st.booleans()):
        out["interval"] = draw(DURATIONS)
    if draw(st.booleans()):
        out["intervalSteps"] = draw(_mix([1, 100, 1000], [0, -5]))
    if draw(st.booleans()):
        out["keep"] = draw(_mix([1, 3], [0, 1001]))
    return out


@st.composite
def failure_policy(draw: Draw) -> dict[str, Any]:
    """Budgets and exit code lists that may overlap or repeat."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["maxFailureRestarts"] = draw(_mix([0, 3, 1000], [-1, 1001]))
    if draw(st.booleans()):
        out["maxPreemptionRestarts"] = draw(_mix([0, 20, 10000], [-1, 10001]))
    for key in ("permanentExitCodes", "retryableExitCodes"):
        if draw(st.booleans()):
            out[key] = draw(st.lists(EXIT_CODES, max_size=3))
    return out


@st.composite
def run_policy(draw: Draw) -> dict[str, Any]:
    """Lifetime settings."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["suspend"] = draw(BOOLS)
    if draw(st.booleans()):
        out["activeDeadlineSeconds"] = draw(_mix([1, 3600], [0, -1]))
    if draw(st.booleans()):
        out["ttlSecondsAfterFinished"] = draw(_mix([0, 60], [-1]))
    if draw(st.booleans()):
        out["cleanPodPolicy"] = draw(_mix(["All", "Running", "None"], ["Some", "all"]))
    return out


@st.composite
def network_topology(draw: Draw) -> dict[str, Any]:
    """A HyperNode tier constraint; hard mode without a tier is refused."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["mode"] = draw(_mix(["hard", "soft"], ["strict", "Hard"]))
    if draw(USUALLY):
        out["highestTierAllowed"] = draw(_mix([1, 2, 64], [0, -1, 65]))
    return out


@st.composite
def template(draw: Draw) -> dict[str, Any]:
    """A pod overlay with volumes, mounts that may dangle, tolerations and extra containers."""
    spec: dict[str, Any] = {}
    volume_names = draw(st.lists(_mix(["data", "cache"], ["pyroclast-checkpoint", "Data"]), max_size=2))
    if volume_names:
        spec["volumes"] = [{"name": n, "emptyDir": {}} for n in volume_names]
    if draw(st.booleans()):
        mounts = draw(st.lists(_mix(["data", "cache"], ["nope"]), max_size=2))
        spec["volumeMounts"] = [{"name": n, "mountPath": f"/m{i}"} for i, n in enumerate(mounts)]
    if draw(st.booleans()):
        toleration: dict[str, Any] = {"key": "k"}
        toleration["operator"] = draw(_mix(["Exists", "Equal"], ["Maybe"]))
        if draw(st.booleans()):
            toleration["value"] = draw(st.sampled_from(["", "v"]))
        toleration["effect"] = draw(_mix(["NoSchedule", "NoExecute"], ["Never"]))
        if draw(st.booleans()):
            toleration["tolerationSeconds"] = 30
        spec["tolerations"] = [toleration]
    if draw(st.booleans()):
        spec["sidecars"] = [{"name": draw(_mix(["logger"], ["trainer"])), "image": "busybox"}]
    if draw(st.booleans()):
        spec["nodeSelector"] = {"pool": "gpu"}
    if draw(st.booleans()):
        spec["terminationGracePeriodSeconds"] = draw(_mix([0, 30, 600], [-1, 86401]))
    out: dict[str, Any] = {"spec": spec}
    if draw(st.booleans()):
        out["metadata"] = {"labels": {"team": "a"}}
    return out


@st.composite
def torchjob_specs(draw: Draw) -> dict[str, Any]:
    """A TorchJob spec: required fields usually present, every optional block sometimes."""
    spec: dict[str, Any] = {}
    if draw(USUALLY):
        spec["image"] = draw(_mix(["ghcr.io/example/train:1.0"], [""]))
    if draw(USUALLY):
        spec["command"] = draw(
            _mix(
                [["-m", "workloads.train"], ["train.py"], ["train.py", "--fast"]],
                [[], ["torchrun", "x.py"], ["python"]],
            )
        )
    optional: dict[str, st.SearchStrategy[Any]] = {
        "args": st.lists(st.sampled_from(["--steps", "10", ""]), max_size=3),
        "env": env_lists(),
        "resources": resources(),
        "nprocPerNode": _mix([1, 2, 8, 1024, "auto", "gpu", "cpu"], [0, 1025, "many", "8", -1]),
        "nodes": nodes(),
        "template": template(),
        "scheduling": st.fixed_dictionaries(
            {},
            optional={
                "queue": DNS_LABELS,
                "priorityClassName": _mix(["high", "train.low"], ["Low"]),
                "preemptible": BOOLS,
                "networkTopology": network_topology(),
            },
        ),
        "checkpoint": checkpoint(),
        "rendezvous": rendezvous(),
        "failurePolicy": failure_policy(),
        "runPolicy": run_policy(),
        "imagePullPolicy": _mix(["Always", "IfNotPresent", "Never"], ["Sometimes"]),
        "successPolicy": _mix(["AllWorkers", "Rank0"], ["rank0", "Majority"]),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=6)):
        spec[key] = draw(optional[key])
    return spec


def torchjob_manifest(spec: dict[str, Any], name: str = "hyp") -> dict[str, Any]:
    """A TorchJob document around `spec`."""
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": name},
        "spec": spec,
    }
