"""What a PromQL expression selects, read well enough to check a dashboard against a real ``/metrics`` page.

No Prometheus server is needed: :func:`selects` pulls out every series selector (metric name and label
matchers) and every label an expression groups or matches by (``by``, ``without``, ``on``, ``ignoring``,
the label of ``label_values(..., x)``), and :func:`missing` says which of them a scrape does not satisfy.
``job`` and ``instance`` are the labels Prometheus itself adds to every scraped series (target labels), so
they are never looked for on the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

TARGET_LABELS: Final = frozenset({"job", "instance"})
_NOT_METRICS: Final = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
        "offset", "inf", "nan",
    }
)  # fmt: skip
_TOKEN: Final = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"|(?P<range>\[[^\]]*\])"
    r"|(?P<grouping>\b(?:by|without|on|ignoring|group_left|group_right)\s*\((?P<labels>[^)]*)\))"
    r"|(?P<matchers>\{[^}]*\})"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<other>\S)",
    re.S,
)
_MATCHER: Final = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?""")
_LABEL_VALUES: Final = re.compile(
    r"^\s*label_values\((?P<inner>.*),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S
)


@dataclass(frozen=True, slots=True)
class Matcher:
    """``label op "value"``."""

    label: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a series with `labels` passes (a missing label reads as the empty string, as in PromQL)."""
        have = labels.get(self.label, "")
        match self.op:
            case "=":
                return have == self.value
            case "!=":
                return have != self.value
            case "=~":
                return re.fullmatch(self.value, have) is not None
            case _:
                return re.fullmatch(self.value, have) is None


@dataclass(frozen=True, slots=True)
class Selector:
    """A series selector: the metric name and its label matchers."""

    metric: str
    matchers: tuple[Matcher, ...] = ()


@dataclass(frozen=True, slots=True)
class Selection:
    """Everything one expression reads: its selectors and the labels it groups by."""

    selectors: tuple[Selector, ...]
    grouping: frozenset[str]


@dataclass(frozen=True, slots=True)
class Sample:
    """One series on a ``/metrics`` page."""

    name: str
    labels: Mapping[str, str]


def parse_matchers(block: str) -> tuple[Matcher, ...]:
    """The matchers of a ``{...}`` block."""
    inner = block.strip()[1:-1]
    found: list[Matcher] = []
    pos = 0
    while pos < len(inner.strip()):
        m = _MATCHER.match(inner, pos)
        if m is None:
            raise ValueError(f"cannot read label matchers {block!r} at {inner[pos:]!r}")
        found.append(Matcher(m.group(1), m.group(2), m.group(3).replace('\\"', '"')))
        pos = m.end()
    return tuple(found)


def selects(expr: str) -> Selection:
    """The series selectors and grouping labels of a PromQL expression or a Grafana ``label_values`` query."""
    grouping: set[str] = set()
    if (lv := _LABEL_VALUES.match(expr)) is not None:
        expr = lv.group("inner")
        grouping.add(lv.group("label"))
    tokens = [(m.lastgroup or "", m.group(0), m.group("labels")) for m in _TOKEN.finditer(expr)]
    selectors: list[Selector] = []
    for i, (kind, text, labels) in enumerate(tokens):
        if kind == "grouping":
            grouping |= {label.strip() for label in (labels or "").split(",") if label.strip()}
            continue
        if kind != "ident" or text.lower() in _NOT_METRICS:
            continue
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if following is not None and (following[1] == "(" or following[0] == "grouping"):
            continue  # a function or an aggregation (`sum by (x) (...)`)
        matchers = (
            parse_matchers(following[1]) if following is not None and following[0] == "matchers" else ()
        )
        selectors.append(Selector(text, matchers))
    return Selection(tuple(selectors), frozenset(grouping))


def scrape(text: str) -> list[Sample]:
    """The series of a Prometheus text-format page."""
    return [
        Sample(sample.name, dict(sample.labels))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def missing(selection: Selection, samples: Iterable[Sample]) -> list[str]:
    """What of `selection` the page does not have: a metric no series of which passes the matchers (target
    labels aside), or a grouping label none of the selected series carries. Empty when all is there."""
    page = list(samples)
    problems: list[str] = []
    chosen: list[Sample] = []
    for selector in selection.selectors:
        wanted = [m for m in selector.matchers if m.label not in TARGET_LABELS]
        named = [s for s in page if s.name == selector.metric]
        passing = [s for s in named if all(m.matches(s.labels) for m in wanted)]
        if not named:
            problems.append(f"no series {selector.metric}")
        elif not passing:
            shown = ", ".join(f'{m.label}{m.op}"{m.value}"' for m in wanted)
            problems.append(f"no series {selector.metric}{{{shown}}}")
        chosen.extend(passing)
    for label in sorted(selection.grouping - TARGET_LABELS):
        if chosen and not any(label in s.labels for s in chosen):
            problems.append(f"no selected series carries the label {label!r}")
    return problems
