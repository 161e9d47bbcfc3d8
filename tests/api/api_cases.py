"""Shared test data for the TorchJob API: a valid base job, and invalid ones with the expected complaint.

Used by the unit tests (the models must refuse each case) and by the cluster tests (the apiserver must refuse
each case, with a message naming the field and the problem).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Final

DELETE: Final = object()
Path = tuple[str | int, ...]


def base_job(name: str = "demo") -> dict[str, Any]:
    """A small valid TorchJob touching most of the spec."""
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": "TorchJob",
        "metadata": {"name": name},
        "spec": {
            "image": "ghcr.io/example/train:1.0",
            "command": ["-m", "workloads.train"],
            "args": ["--steps", "100"],
            "env": [{"name": "NCCL_DEBUG", "value": "WARN"}],
            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": 2, "memory": "4Gi"}},
            "nprocPerNode": 2,
            "nodes": {"count": 2},
            "checkpoint": {"volume": {"emptyDir": {}}, "interval": "10m"},
            "template": {
                "spec": {
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                }
            },
        },
    }


def edited(doc: dict[str, Any], edits: list[tuple[Path, Any]]) -> dict[str, Any]:
    """A deep copy of `doc` with each (path, value) set, or removed when value is DELETE."""
    out = copy.deepcopy(doc)
    for path, value in edits:
        node: Any = out
        for key in path[:-1]:
            if isinstance(key, str) and key not in node:
                node[key] = {}
            node = node[key]
        last = path[-1]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return out


@dataclass(frozen=True)
class InvalidCase:
    """A job the API must refuse: `edits` applied to the base job; `expect` are substrings of the apiserver's
    message (the field path and the problem)."""

    id: str
    edits: list[tuple[Path, Any]]
    expect: tuple[str, ...]
    name: str = "demo"
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    def manifest(self) -> dict[str, Any]:
        """The invalid TorchJob."""
        return edited(base_job(self.name), self.edits)


# Complaints the apiserver words itself (OpenAPI checks). Every other expected text is one of our CEL
# messages, which the models must repeat word for word.
GENERIC: Final = (
    "Required value",
    "should match",
    "Unsupported value",
    "greater than or equal",
    "less than or equal",
    "at least",
    "at most",
    "Duplicate value",
    "must be of type",
    "unknown field",
    "Too long",
)

S: Final = "spec"
T: Final = ("spec", "template", "spec")

INVALID_CASES: Final[list[InvalidCase]] = [
    InvalidCase(
        "image-missing",
        [((S, "image"), DELETE)],
        ("spec", "spec.image is required unless spec.runtimeRef names a runtime that sets it"),
    ),
    InvalidCase(
        "runtime-ref-kind",
        [((S, "runtimeRef"), {"kind": "Runtime", "name": "gpu"})],
        ("spec.runtimeRef.kind", "Unsupported value"),
    ),
    InvalidCase(
        "runtime-ref-name-missing",
        [((S, "runtimeRef"), {"kind": "TorchRuntime"})],
        ("spec.runtimeRef.name", "Required value"),
    ),
    InvalidCase(
        "runtime-ref-name",
        [((S, "runtimeRef"), {"name": "GPU_A100"})],
        ("spec.runtimeRef.name", "should match"),
    ),
    InvalidCase("image-empty", [((S, "image"), "")], ("spec.image", "at least 1 chars")),
    InvalidCase("command-missing", [((S, "command"), DELETE)], ("spec.command", "Required value")),
    InvalidCase("command-empty", [((S, "command"), [])], ("spec.command", "at least 1 items")),
    InvalidCase(
        "command-torchrun",
        [((S, "command"), ["torchrun", "train.py"])],
        ("spec.command", "do not start it with torchrun"),
    ),
    InvalidCase(
        "env-pet",
        [((S, "env"), [{"name": "PET_NNODES", "value": "4"}])],
        ("spec.env[0].name", "env PET_NNODES is reserved"),
    ),
    InvalidCase(
        "env-master-addr",
        [((S, "env"), [{"name": "MASTER_ADDR", "value": "x"}])],
        ("spec.env[0].name", "env MASTER_ADDR is reserved"),
    ),
    InvalidCase(
        "env-torchelastic",
        [((S, "env"), [{"name": "TORCHELASTIC_RUN_ID", "value": "x"}])],
        ("spec.env[0].name", "env TORCHELASTIC_RUN_ID is reserved"),
    ),
    InvalidCase(
        "env-pyroclast",
        [((S, "env"), [{"name": "A", "value": "1"}, {"name": "PYROCLAST_CHECKPOINT_DIR", "value": "/x"}])],
        ("spec.env[1].name", "env PYROCLAST_CHECKPOINT_DIR is reserved"),
    ),
    InvalidCase(
        "env-duplicate",
        [((S, "env"), [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}])],
        ("spec.env[1]", "Duplicate value"),
    ),
    InvalidCase(
        "env-value-and-from",
        [
            (
                (S, "env"),
                [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            )
        ],
        ("spec.env[0].valueFrom", "mutually exclusive"),
    ),
    InvalidCase(
        "env-bad-name", [((S, "env"), [{"name": "1=x", "value": "1"}])], ("spec.env[0].name", "should match")
    ),
    InvalidCase(
        "nproc-word",
        [((S, "nprocPerNode"), "many")],
        ("spec.nprocPerNode", "nprocPerNode must be an integer from 1 to 1024 or one of auto, gpu, cpu"),
    ),
    InvalidCase(
        "nproc-zero", [((S, "nprocPerNode"), 0)], ("spec.nprocPerNode", "nprocPerNode must be an integer")
    ),
    InvalidCase(
        "nodes-zero", [((S, "nodes", "count"), 0)], ("spec.nodes.count", "greater than or equal to 1")
    ),
    InvalidCase(
        "nodes-min-above-count",
        [((S, "nodes"), {"count": 2, "min": 3, "max": 4})],
        ("spec.nodes.min", "nodes.min must be less than or equal to nodes.count"),
    ),
    InvalidCase(
        "nodes-count-above-max",
        [((S, "nodes"), {"count": 5, "min": 1, "max": 4})],
        ("spec.nodes.count", "nodes.count must be less than or equal to nodes.max"),
    ),
    InvalidCase(
        "nodes-min-alone",
        [((S, "nodes"), {"count": 2, "min": 1})],
        ("spec.nodes.max", "must be set together"),
    ),
    InvalidCase(
        "nodes-too-many", [((S, "nodes", "count"), 5000)], ("spec.nodes.count", "less than or equal to 4096")
    ),
    InvalidCase(
        "resources-request-above-limit",
        [((S, "resources"), {"requests": {"cpu": "3"}, "limits": {"cpu": "2500m"}})],
        ("spec.resources.requests", "requests must not exceed resources.limits"),
    ),
    InvalidCase(
        "resources-bad-quantity",
        [((S, "resources"), {"limits": {"memory": "lots"}})],
        ("spec.resources.limits.memory", "should match"),
    ),
    InvalidCase(
        "queue-bad-name",
        [((S, "scheduling"), {"queue": "Team_A"})],
        ("spec.scheduling.queue", "should match"),
    ),
    InvalidCase(
        "preemptible-string",
        [((S, "scheduling"), {"preemptible": "yes"})],
        ("spec.scheduling.preemptible", "must be of type boolean"),
    ),
    InvalidCase(
        "topology-mode",
        [((S, "scheduling"), {"networkTopology": {"mode": "strict", "highestTierAllowed": 1}})],
        ("spec.scheduling.networkTopology.mode", "Unsupported value"),
    ),
    InvalidCase(
        "topology-tier-zero",
        [((S, "scheduling"), {"networkTopology": {"mode": "hard", "highestTierAllowed": 0}})],
        ("spec.scheduling.networkTopology.highestTierAllowed", "greater than or equal to 1"),
    ),
    InvalidCase(
        "topology-hard-without-tier",
        [((S, "scheduling"), {"networkTopology": {"mode": "hard"}})],
        (
            "spec.scheduling.networkTopology.highestTierAllowed",
            "networkTopology.highestTierAllowed is required in hard mode",
        ),
    ),
    InvalidCase(
        "success-policy",
        [((S, "successPolicy"), "Majority")],
        ("spec.successPolicy", "Unsupported value"),
    ),
    InvalidCase(
        "checkpoint-no-volume",
        [((S, "checkpoint"), {"path": "/ckpt"})],
        ("spec.checkpoint.volume", "Required value"),
    ),
    InvalidCase(
        "checkpoint-two-sources",
        [((S, "checkpoint", "volume"), {"emptyDir": {}, "hostPath": {"path": "/x"}})],
        ("spec.checkpoint.volume", "at most 1"),
    ),
    InvalidCase(
        "checkpoint-relative-path",
        [((S, "checkpoint", "path"), "ckpt")],
        ("spec.checkpoint.path", "should match"),
    ),
    InvalidCase(
        "checkpoint-interval-words",
        [((S, "checkpoint", "interval"), "15 minutes")],
        ("spec.checkpoint.interval", "should match"),
    ),
    InvalidCase(
        "checkpoint-interval-short",
        [((S, "checkpoint", "interval"), "500ms")],
        ("spec.checkpoint.interval", "checkpoint.interval must be a duration from 1s to 168h"),
    ),
    InvalidCase(
        "rdzv-no-unit",
        [((S, "rendezvous"), {"joinTimeout": "600"})],
        ("spec.rendezvous.joinTimeout", "should match"),
    ),
    InvalidCase(
        "rdzv-last-call-long",
        [((S, "rendezvous"), {"joinTimeout": "1m", "lastCallTimeout": "2m"})],
        ("spec.rendezvous.lastCallTimeout", "must be shorter than rendezvous.joinTimeout"),
    ),
    InvalidCase(
        "rdzv-keepalive-long",
        [((S, "rendezvous"), {"keepAliveInterval": "10m"})],
        (
            "spec.rendezvous.keepAliveInterval",
            "rendezvous.keepAliveInterval must be a duration from 1s to 5m",
        ),
    ),
    InvalidCase(
        "rdzv-port-low",
        [((S, "rendezvous"), {"port": 80})],
        ("spec.rendezvous.port", "greater than or equal to 1024"),
    ),
    InvalidCase(
        "exit-code-overlap",
        [((S, "failurePolicy"), {"permanentExitCodes": [1, 2], "retryableExitCodes": [2, 137]})],
        ("spec.failurePolicy.retryableExitCodes", "both permanent and retryable"),
    ),
    InvalidCase(
        "exit-code-range",
        [((S, "failurePolicy"), {"permanentExitCodes": [256]})],
        ("spec.failurePolicy.permanentExitCodes[0]", "less than or equal to 255"),
    ),
    InvalidCase(
        "exit-code-duplicate",
        [((S, "failurePolicy"), {"retryableExitCodes": [137, 137]})],
        ("spec.failurePolicy.retryableExitCodes[1]", "Duplicate value"),
    ),
    InvalidCase(
        "restarts-negative",
        [((S, "failurePolicy"), {"maxFailureRestarts": -1})],
        ("spec.failurePolicy.maxFailureRestarts", "greater than or equal to 0"),
    ),
    InvalidCase(
        "clean-pod-policy",
        [((S, "runPolicy"), {"cleanPodPolicy": "Some"})],
        ("spec.runPolicy.cleanPodPolicy", "Unsupported value"),
    ),
    InvalidCase(
        "deadline-zero",
        [((S, "runPolicy"), {"activeDeadlineSeconds": 0})],
        ("spec.runPolicy.activeDeadlineSeconds", "greater than or equal to 1"),
    ),
    InvalidCase(
        "pull-policy", [((S, "imagePullPolicy"), "Sometimes")], ("spec.imagePullPolicy", "Unsupported value")
    ),
    InvalidCase(
        "volume-reserved",
        [
            ((*T, "volumes"), [{"name": "pyroclast-checkpoint", "emptyDir": {}}]),
            ((*T, "volumeMounts"), DELETE),
        ],
        ("spec.template.spec.volumes[0].name", "reserved for the operator"),
    ),
    InvalidCase(
        "volume-reserved-prefix",
        [
            ((*T, "volumes"), [{"name": "pyroclast-progress-token", "emptyDir": {}}]),
            ((*T, "volumeMounts"), DELETE),
        ],
        ("spec.template.spec.volumes[0].name", "reserved for the operator"),
    ),
    InvalidCase(
        "sidecar-trainer",
        [((*T, "sidecars"), [{"name": "trainer", "image": "busybox"}])],
        ("spec.template.spec.sidecars[0].name", "reserved for the trainer"),
    ),
    InvalidCase(
        "mount-unknown-volume",
        [((*T, "volumeMounts"), [{"name": "nope", "mountPath": "/nope"}])],
        ("spec.template.spec.volumeMounts", "must be a volume in template.spec.volumes"),
    ),
    InvalidCase(
        "toleration-exists-value",
        [((*T, "tolerations"), [{"key": "k", "operator": "Exists", "value": "v"}])],
        ("spec.template.spec.tolerations[0].value", "must be empty when operator is Exists"),
    ),
    InvalidCase(
        "toleration-seconds",
        [((*T, "tolerations"), [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}])],
        ("spec.template.spec.tolerations[0].tolerationSeconds", "needs effect NoExecute"),
    ),
    InvalidCase("unknown-field", [((S, "replicas"), 3)], ("spec.replicas", "unknown field")),
    InvalidCase("name-starts-with-digit", [], ("metadata.name", "must start with a letter"), name="1job"),
    InvalidCase("name-too-long", [], ("metadata.name", "Too long"), name="j" * 49),
]


def base_runtime(name: str = "gpu", kind: str = "ClusterTorchRuntime") -> dict[str, Any]:
    """A valid runtime: NCCL env, a dataset volume, a toleration, a queue; the queue and an env var locked."""
    return {
        "apiVersion": "pyroclast.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "defaults": {
                "image": "ghcr.io/example/train:1.0",
                "env": [{"name": "NCCL_IB_HCA", "value": "mlx5"}, {"name": "NCCL_DEBUG", "value": "WARN"}],
                "scheduling": {"queue": "gpu", "priorityClassName": "training"},
                "failurePolicy": {"maxFailureRestarts": 5},
                "template": {
                    "spec": {
                        "volumes": [{"name": "datasets", "persistentVolumeClaim": {"claimName": "datasets"}}],
                        "volumeMounts": [{"name": "datasets", "mountPath": "/datasets", "readOnly": True}],
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                        "nodeSelector": {"pool": "gpu"},
                    }
                },
            },
            "locked": ["scheduling.queue", "env[NCCL_IB_HCA]"],
        },
    }


@dataclass(frozen=True)
class InvalidRuntimeCase:
    """A runtime the API must refuse: `edits` applied to the base runtime; `expect` as for InvalidCase."""

    id: str
    edits: list[tuple[Path, Any]]
    expect: tuple[str, ...]

    def manifest(self, kind: str = "ClusterTorchRuntime") -> dict[str, Any]:
        """The invalid runtime."""
        return edited(base_runtime(kind=kind), self.edits)


LOCKED_MESSAGE_START: Final = "locked: each entry is a TorchJob spec path"

INVALID_RUNTIME_CASES: Final[list[InvalidRuntimeCase]] = [
    InvalidRuntimeCase(
        "locked-unknown-field", [((S, "locked"), ["gpus"])], ("spec.locked[0]", LOCKED_MESSAGE_START)
    ),
    InvalidRuntimeCase(
        "locked-runtime-ref", [((S, "locked"), ["runtimeRef.name"])], ("spec.locked[0]", LOCKED_MESSAGE_START)
    ),
    InvalidRuntimeCase(
        "locked-malformed", [((S, "locked"), ["env[NCCL"])], ("spec.locked[0]", "should match")
    ),
    InvalidRuntimeCase(
        "locked-duplicate", [((S, "locked"), ["image", "image"])], ("spec.locked[1]", "Duplicate value")
    ),
    InvalidRuntimeCase(
        "defaults-unknown-field", [((S, "defaults", "gpus"), 8)], ("spec.defaults.gpus", "unknown field")
    ),
    InvalidRuntimeCase(
        "defaults-env-type",
        [((S, "defaults", "env"), "NCCL_DEBUG=INFO")],
        ("spec.defaults.env", "must be of type array"),
    ),
    InvalidRuntimeCase(
        "defaults-queue-name",
        [((S, "defaults", "scheduling", "queue"), "GPU")],
        ("spec.defaults.scheduling.queue", "should match"),
    ),
]

# The operator's own fields of the pod template, refused with the reason.
_OWNED_POD: Final = {
    "schedulerName": ("default-scheduler", "is set by the operator: Volcano schedules the workers"),
    "priorityClassName": ("high", "is set from spec.scheduling.priorityClassName"),
    "priority": (1000, "is computed by the apiserver from the priority class"),
    "nodeName": ("node-1", "would bypass Volcano's gang scheduling"),
    "restartPolicy": ("OnFailure", "is set by the operator (Never)"),
    "hostname": ("worker", "is set by the operator: each worker's stable DNS name is its rendezvous address"),
    "subdomain": (
        "workers",
        "is set by the operator: the job's headless Service gives the workers their DNS names",
    ),
}
_OWNED_TRAINER: Final = {
    "image": ("other:1", "set spec.image"),
    "command": (["python", "x.py"], "the trainer runs torchrun with spec.command"),
    "args": (["--x"], "set spec.args"),
    "imagePullPolicy": ("Always", "set spec.imagePullPolicy"),
    "resources": ({"limits": {"cpu": "1"}}, "set spec.resources"),
    "terminationMessagePath": ("/tmp/msg", "the operator reads the worker's report from it"),
    "terminationMessagePolicy": ("File", "the operator reads the worker's report from it"),
}
M: Final = ("spec", "template", "metadata")

TEMPLATE_CASES: Final[list[InvalidCase]] = [
    *(
        InvalidCase(
            f"template-owned-{field}",
            [((*T, field), value)],
            (f"spec.template.spec.{field}", f"template.spec.{field} {why}"),
        )
        for field, (value, why) in _OWNED_POD.items()
    ),
    *(
        InvalidCase(
            f"template-trainer-{field}",
            [((*T, "containers"), [{"name": "trainer", field: value}])],
            (
                f"spec.template.spec.containers[0].{field}",
                f"containers[trainer].{field} is owned by the operator: {why}",
            ),
        )
        for field, (value, why) in _OWNED_TRAINER.items()
    ),
    InvalidCase(
        "template-trainer-env-reserved",
        [
            (
                (*T, "containers"),
                [
                    {
                        "name": "trainer",
                        "env": [
                            {"name": "NCCL_IB_HCA", "value": "mlx5"},
                            {"name": "MASTER_PORT", "value": "1"},
                        ],
                    }
                ],
            )
        ],
        (
            "spec.template.spec.containers[0].env",
            "containers[trainer].env: PET_*, TORCHELASTIC_*, PYROCLAST_*",
        ),
    ),
    InvalidCase(
        "template-container-no-image",
        [((*T, "containers"), [{"name": "exporter"}])],
        ("spec.template.spec.containers[0].image", "image is required for every container but trainer"),
    ),
    InvalidCase(
        "template-label-owned",
        [((*M, "labels"), {"team": "a", "pyroclast.dev/job-name": "other"})],
        ("spec.template.metadata.labels", "are set by the operator: they select the job's pods"),
    ),
    InvalidCase(
        "template-annotation-owned",
        [((*M, "annotations"), {"volcano.sh/preemptable": "true"})],
        (
            "spec.template.metadata.annotations",
            "are set by the operator: they put the pods in the job's Volcano gang",
        ),
    ),
    InvalidCase(
        "template-mount-shm",
        [((*T, "volumeMounts"), [{"name": "data", "mountPath": "/dev/shm"}])],
        ("spec.template", "a trainer volumeMount uses a path the operator mounts"),
    ),
    InvalidCase(
        "template-mount-checkpoint",
        [
            (
                (*T, "containers"),
                [{"name": "trainer", "volumeMounts": [{"name": "data", "mountPath": "/checkpoints"}]}],
            )
        ],
        ("spec.template", "a trainer volumeMount uses a path the operator mounts"),
    ),
    InvalidCase(
        "template-mount-progress-token",
        [((*T, "volumeMounts"), [{"name": "data", "mountPath": "/var/run/secrets/pyroclast.dev/progress"}])],
        ("spec.template", "a trainer volumeMount uses a path the operator mounts"),
    ),
    InvalidCase(
        "template-unknown-field",
        [((*T, "hostNetwrok"), True)],
        ("spec.template.spec.hostNetwrok", "unknown field"),
    ),
    InvalidCase(
        "template-dns-policy",
        [((*T, "dnsPolicy"), "HostFirst")],
        ("spec.template.spec.dnsPolicy", "Unsupported value"),
    ),
    InvalidCase(
        "shared-memory-size",
        [((S, "sharedMemory"), {"sizeLimit": "lots"})],
        ("spec.sharedMemory.sizeLimit", "should match"),
    ),
]
INVALID_CASES.extend(TEMPLATE_CASES)
