"""Requests the apiserver served during a benchmark phase, by verb and resource (its own metrics).

Says which client traffic the phase cost: our writes, the scheduler's binds, kwok's status updates,
the EndpointSlice controller's churn.
"""

from __future__ import annotations

import re
from collections import Counter

from e2e.cluster import Cluster

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def served(cluster: Cluster) -> Counter[str]:
    """Requests served so far, keyed ``VERB resource[/subresource]`` (WATCH and long-running included), dry
    runs apart (``POST pods (dry run)``)."""
    text = cluster.api.request("GET", "/metrics").text
    out: Counter[str] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        key = f"{labels.get('verb', '?')} {resource or labels.get('group', '?')}"
        if labels.get("dry_run"):
            key += " (dry run)"  # admitted and validated, nothing stored
        out[key] += int(float(match["value"]))
    return out


class RequestMeter:
    """The apiserver's requests between :meth:`start` and :meth:`stop`."""

    def __init__(self, cluster: Cluster):
        self._cluster = cluster
        self._start: Counter[str] = Counter()

    def start(self) -> RequestMeter:
        self._start = served(self._cluster)
        return self

    def stop(self) -> dict[str, int]:
        """Requests per ``VERB resource`` in the phase, most first."""
        delta = served(self._cluster) - self._start
        return dict(delta.most_common())


def format_requests(label: str, counts: dict[str, int], top: int = 10) -> str:
    """One line: the total and the `top` busiest verb/resource pairs."""
    listed = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:top])
    return f"{label} apiserver requests {sum(counts.values())}: {listed}"
