"""The API resources the TorchJob application reads and writes, beyond the core ones the runtime names.

Defined once here so the reconciler, the CLI, the SDK, the benchmarks and the tests agree on group, version
and plural (core kinds such as pods and services are in :mod:`controller.runtime.resource`).
"""

from __future__ import annotations

from typing import Final

from api import GROUP, KIND, PLURAL, VERSION
from api.constants import VOLCANO_GROUP, VOLCANO_VERSION
from controller.runtime.resource import Resource

TORCHJOBS: Final = Resource(GROUP, VERSION, KIND, PLURAL)
PODGROUPS: Final = Resource(VOLCANO_GROUP, VOLCANO_VERSION, "PodGroup", "podgroups")
QUEUES: Final = Resource(VOLCANO_GROUP, VOLCANO_VERSION, "Queue", "queues", namespaced=False)
PRIORITY_CLASSES: Final = Resource(
    "scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False
)
