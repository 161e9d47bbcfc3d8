"""The API resources the TorchJob application reads and writes, beyond the core ones the runtime names.

Defined once here so the reconciler, the CLI, the SDK, the benchmarks and the tests agree on group, version
and plural (core kinds such as pods and services are in :mod:`controller.runtime.resource`).
"""

from __future__ import annotations

from typing import Final

from api import GROUP, KIND, PLURAL, VERSION
from api.constants import VOLCANO_GROUP, VOLCANO_VERSION
from api.runtime import RUNTIME_PLURALS, RuntimeKind
from controller.runtime.resource import Resource

TORCHJOBS: Final = Resource(GROUP, VERSION, KIND, PLURAL)
PODGROUPS: Final = Resource(VOLCANO_GROUP, VOLCANO_VERSION, "PodGroup", "podgroups")
QUEUES: Final = Resource(VOLCANO_GROUP, VOLCANO_VERSION, "Queue", "queues", namespaced=False)
PRIORITY_CLASSES: Final = Resource(
    "scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False
)
RUNTIMES: Final[dict[RuntimeKind, Resource]] = {
    kind: Resource(GROUP, VERSION, str(kind), plural, namespaced=kind == RuntimeKind.NAMESPACED)
    for kind, plural in RUNTIME_PLURALS.items()
}
