"""The benchmark table (figure, ours, reference, ratio, target, pass/fail), its JSON and the PNG plots."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from controller.runtime.objects import JsonObject

P4_PODS = 80_000
P4_LIMIT_MB = 250.0
MIB = 2**20 / 1e6  # MB per MiB


NO_DATA = "no data"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table.

    `passed` is None only for a figure shown without a target that has its data; a row that misses its data
    (its benchmark crashed, a reference failed to build or timed out) is a miss like a figure over its target.
    `reference` is a measured reference (the raw client, Kubeflow) with `ratio` = ours / reference; a constant
    target (15 s, 250 MB, == 0) is in `target` alone. `at_least`: the reference timed out, `reference` is
    its time limit (its figure is larger) and `ratio` an upper bound."""

    figure: str
    ours: float | None
    reference: float | None
    target: str
    passed: bool | None
    ratio: float | None = None
    note: str = ""
    measured_reference: bool = True
    at_least: bool = False


def _missing(why: str) -> str:
    return f"{NO_DATA}: {why}" if why else NO_DATA


def against(
    figure: str,
    ours: float | None,
    reference: float | None,
    bound: tuple[str, float] | None,
    note: str = "",
    *,
    why_missing: str = "",
    timed_out_after: float | None = None,
) -> Row:
    """ours vs a measured reference: the ratio, judged by `bound` (``("<=", 0.8)``), or shown alone.

    `timed_out_after`: for a time figure, the seconds after which the reference was given up. Its time is
    longer, so ours over that limit bounds the ratio from above: a pass when the bound meets an upper
    target, no pass otherwise (the true ratio is not known)."""
    upper = bound is None or bound[0] == "<="
    if ours is not None and not reference and timed_out_after and upper:
        ratio = ours / timed_out_after
        passed = None if bound is None else _meets(ratio, bound)
        why = f"ref timed out after {timed_out_after:g} s: ratio at most"
        text = f"{note}; {why}" if note else why
        return Row(figure, ours, timed_out_after, _target(bound, "x"), passed, ratio, text, at_least=True)
    if ours is None or not reference:
        return Row(figure, ours, reference or None, _target(bound, "x"), False, None, _missing(why_missing))
    ratio = ours / reference
    passed = None if bound is None else _meets(ratio, bound)
    return Row(figure, ours, reference, _target(bound, "x"), passed, ratio, note)


def limit(figure: str, ours: float | None, bound: tuple[str, float], unit: str, note: str = "") -> Row:
    """ours against a constant target (no reference, no ratio)."""
    if ours is None:
        return Row(figure, None, None, _target(bound, unit), False, None, _missing(note), False)
    return Row(figure, ours, None, _target(bound, unit), _meets(ours, bound), None, note, False)


def shown(figure: str, ours: float | None, note: str = "", *, why_missing: str = "") -> Row:
    """A figure without a target; still a miss when it has no data."""
    if ours is None:
        return Row(figure, None, None, "", False, None, _missing(why_missing), False)
    return Row(figure, ours, None, "", None, None, note, False)


def _meets(value: float, bound: tuple[str, float]) -> bool:
    op, target = bound
    return {"<=": value <= target, ">=": value >= target, "==": value == target}[op]


def _target(bound: tuple[str, float] | None, unit: str) -> str:
    if bound is None:
        return ""
    op, target = bound
    return f"{op} {target:g}{unit}" if unit == "x" else f"{op} {target:g} {unit}".rstrip()


def scale_rows(scale: JsonObject) -> list[Row]:
    """P1, P2, P4 (rig RSS, shown), P5 from bench_scale's JSON; every row, with or without its data."""
    rows: list[Row] = []
    size = f"{scale.get('jobs', '?')}x{scale.get('workers', '?')}"
    crashed = "" if scale else "bench_scale wrote no figures"
    ours: JsonObject = scale.get("ours") or {}
    raw = scale.get("raw_rate")
    rate = ours.get("create_rate")
    missing_ours = crashed or ("our run timed out" if ours.get("timed_out") else "our run did not finish")
    rows.append(against(f"P1 pod creates/s, {size} (ref: raw client)", rate, raw, (">=", 0.8),
                        why_missing=missing_ours))  # fmt: skip
    alone: JsonObject = scale.get("ours_creates_only") or {}
    rows.append(against("P1 same, scheduler stopped (as the raw pods)", alone.get("create_rate"), raw,
                        (">=", 0.8), "no binds, no kwok status updates", why_missing=crashed))  # fmt: skip
    mine = ours.get("running_seconds")
    kubeflow = () if scale.get("kubeflow_skipped") else (
        ("tuned", "kubeflow_tuned", ("<=", 0.8)),
        ("defaults", "kubeflow_default", None),
    )  # fmt: skip
    for label, key, bound in kubeflow:
        ref: JsonObject = scale.get(key) or {}
        if ref.get("timed_out"):
            why = f"ref timed out at {ref.get('created')}/{ref.get('pods')} pods"
        else:
            why = crashed or str(scale.get("kubeflow_error", ""))[:60] or "ref did not run"
        if mine is None and not crashed:
            why = missing_ours
        rows.append(against(f"P2 s to all Running vs Kubeflow {label}", mine, ref.get("running_seconds"),
                            bound, why_missing=why, timed_out_after=_gave_up(ref)))  # fmt: skip
        rows.append(against(f"   pod creates/s vs Kubeflow {label}", rate, ref.get("create_rate"), None,
                            why_missing=why))  # fmt: skip
    rows += peer_rows(scale, crashed or missing_ours)
    p4: JsonObject = scale.get("p4") or {}
    if p4.get("pods", 0) >= P4_PODS:
        rows.append(limit(f"P4 RSS MB, {p4['jobs']} jobs/{p4['pods']} pods", p4["rss_mib"] * MIB,
                          ("<=", P4_LIMIT_MB), "MB", "measured on the rig"))  # fmt: skip
    else:
        # No linear projection: the parsed-model cache is bounded (1,024 jobs), so growth is not per pod; the
        # verdicts are bench_memory's (80,000 pods) and bench_listed's (10,000 TorchJobs from the apiserver).
        rss = p4.get("rss_mib")
        per_pod = (rss - p4["idle_rss_mib"]) * 2**20 / max(1, p4["pods"]) if rss is not None else 0.0
        rows.append(shown(f"   RSS MB on the rig, {p4.get('jobs', '?')} jobs/{p4.get('pods', '?')} pods",
                          None if rss is None else rss * MIB, f"{per_pod:.0f} B/pod above idle, all in",
                          why_missing=crashed or "no restart measured"))  # fmt: skip
    p5: JsonObject = scale.get("p5") or {}
    why = crashed or "no restart measured"
    synced = f"synced at {p5['synced_seconds']} s" if p5 else why
    rows.append(limit(f"P5 s to synced+steady after -9, {scale.get('jobs', '?')} jobs",
                      p5.get("steady_seconds"), ("<=", 15.0), "s", synced))  # fmt: skip
    rows.append(limit("P5 pods created after the restart", p5.get("pod_creates_after_restart"), ("==", 0), "",
                      "" if p5 else why))  # fmt: skip
    return rows


GO_PEERS = ("vcjob", "jobset", "kubeflow_tuned", "kubeflow_default")
"""The Go operators bench_scale runs the same workload with (keys of its JSON)."""


def _gave_up(run: JsonObject) -> float | None:
    """The seconds after which a timed-out run was given up (None: it finished, or no limit recorded)."""
    return run.get("timeout_seconds") if run.get("timed_out") else None


def _why_peer(scale: JsonObject, key: str, fallback: str) -> str:
    ref: JsonObject = scale.get(key) or {}
    if ref.get("timed_out"):
        return f"ref timed out at {ref.get('created')}/{ref.get('pods')} pods"
    return fallback or str(scale.get(f"{key.split('_')[0]}_error", ""))[:60] or "ref did not run"


def best_go_cpu(scale: JsonObject) -> tuple[str, float] | None:
    """The Go peer (of those that finished) with the least CPU per 1,000 pods, and that figure."""
    done = [
        (key, float(run["operator_cpu_per_1000_pods"]))
        for key in GO_PEERS
        if (run := scale.get(key) or {}).get("operator_cpu_per_1000_pods") is not None
        and not run.get("timed_out")
    ]
    return min(done, key=lambda kv: kv[1]) if done else None


def peer_rows(scale: JsonObject, missing_ours: str) -> list[Row]:
    """Against Volcano's job controller (time to Running, creates/s, gang recovery) and the best Go peer's
    CPU per 1,000 pods; `missing_ours` says why our figures are absent, where they are."""
    ours: JsonObject = scale.get("ours") or {}
    vc: JsonObject = scale.get("vcjob") or {}
    why = missing_ours if ours.get("running_seconds") is None else _why_peer(scale, "vcjob", "")
    with_vcjob = not scale.get("vcjob_skipped")
    rows = [
        against("P2 s to all Running vs vcjob", ours.get("running_seconds"), vc.get("running_seconds"),
                ("<=", 1.0), why_missing=why, timed_out_after=_gave_up(vc)),
        against("   pod creates/s vs vcjob", ours.get("create_rate"), vc.get("create_rate"), None,
                why_missing=why),
    ] if with_vcjob else []  # fmt: skip
    if not scale.get("jobset_skipped"):
        js: JsonObject = scale.get("jobset") or {}
        why_js = missing_ours if ours.get("running_seconds") is None else _why_peer(scale, "jobset", "")
        rows += [
            against("P2 s to all Running vs JobSet", ours.get("running_seconds"), js.get("running_seconds"),
                    None, "JobSet: no gang", why_missing=why_js, timed_out_after=_gave_up(js)),
            against("   pod creates/s vs JobSet", ours.get("create_rate"), js.get("create_rate"), None,
                    why_missing=why_js),
        ]  # fmt: skip
    best = best_go_cpu(scale)
    mine = None if ours.get("timed_out") else ours.get("operator_cpu_per_1000_pods")
    why = missing_ours if mine is None else "no Go peer finished"
    note = f"best: {best[0]}" if best else ""
    rows.append(against("Operator CPU s per 1,000 pods vs best Go peer", mine, best[1] if best else None,
                        ("<=", 1.0), note, why_missing=why))  # fmt: skip
    if scale.get("recovery_skipped") or not with_vcjob:
        return rows
    rec: JsonObject = scale.get("recovery_ours") or {}
    vc_rec: JsonObject = scale.get("recovery_vcjob") or {}
    recreated = f"pods recreated {rec.get('recreated', '?')} vs {vc_rec.get('recreated', '?')}"
    note = f"{rec.get('killed', '?')} deleted; {recreated}"
    why = missing_ours if not rec else "timed out" if rec.get("timed_out") else ""
    if rec and not why:
        why = "vcjob timed out" if vc_rec.get("timed_out") else "" if vc_rec else "vcjob's did not run"
    rows += [
        against("Gang recovery s vs vcjob", rec.get("recovered_seconds"), vc_rec.get("recovered_seconds"),
                ("<=", 1.0), note, why_missing=why, timed_out_after=_gave_up(vc_rec)),
        against("   pods recreated/s vs vcjob", rec.get("recreate_rate"), vc_rec.get("recreate_rate"), None,
                why_missing=why),
    ]  # fmt: skip
    return rows


OPERATORS = {"ours": "pyroclast", "vcjob": "vcjob", "jobset": "jobset (+ Job ctl)",
             "kubeflow_tuned": "kubeflow tuned", "kubeflow_default": "kubeflow defaults"}  # fmt: skip


def operators_table(scale: JsonObject, top: int = 6) -> str:
    """Per operator, the same workload: time to all Running, creates/s, own CPU per 1,000 pods, apiserver
    requests per pod (total, then the busiest verb/resource pairs), peak RSS, and the gang recovery."""

    def num(v: Any, digits: int = 2) -> str:
        return "n/a" if v is None else f"{float(v):,.{digits}f}"

    head = (f"{'operator':<18} {'s to Running':>12} {'pods/s':>8} {'CPU s/1k pods':>13} {'req/pod':>8} "
            f"{'peak RSS MiB':>12} {'recovery s':>10} {'recreated/s':>11}")  # fmt: skip
    lines = [
        f"{scale.get('jobs', '?')} jobs x {scale.get('workers', '?')} workers, one rig",
        head,
        "-" * len(head),
    ]
    detail: list[str] = []
    for key, label in OPERATORS.items():
        run: JsonObject = scale.get(key) or {}
        if not run:
            continue
        rec: JsonObject = scale.get(f"recovery_{'ours' if key == 'ours' else key}") or {}
        per_pod: dict[str, float] = run.get("requests_per_pod") or {}
        total = sum(per_pod.values()) if per_pod else None
        lines.append(
            f"{label:<18} {num(run.get('running_seconds'), 1):>12} {num(run.get('create_rate'), 1):>8} "
            f"{num(run.get('operator_cpu_per_1000_pods')):>13} {num(total):>8} "
            f"{num(run.get('operator_peak_rss_mib'), 1):>12} {num(rec.get('recovered_seconds')):>10} "
            f"{num(rec.get('recreate_rate'), 1):>11}" + ("  TIMED OUT" if run.get("timed_out") else "")
        )
        if per_pod:
            busiest = ", ".join(f"{k} {v:.2f}" for k, v in list(per_pod.items())[:top])
            detail.append(f"  {label} requests/pod: {busiest}")
    return "\n".join([*lines, *detail])


def memory_rows(memory: JsonObject) -> list[Row]:
    """P4 measured in process by bench_memory (80,000 pods from a synthetic apiserver)."""
    rss = memory.get("rss_mib")
    per_pod = (memory.get("bytes_per_object") or {}).get("pod")
    note = f"{per_pod} B/pod cached" if rss is not None else "bench_memory wrote no figures"
    figure = f"P4 RSS MB in process, {memory.get('jobs', '?')} jobs/{memory.get('pods', '?')} pods"
    return [limit(figure, None if rss is None else rss * MIB, ("<=", P4_LIMIT_MB), "MB", note)]


def listed_rows(listed: JsonObject) -> list[Row]:
    """P4 on the rig: the operator's RSS with every TorchJob listed from the real apiserver (bench_listed)."""
    rss = listed.get("rss_mib")
    if rss is None:
        note = "bench_listed wrote no figures"
    else:
        note = f"first list {listed['first_list_pages']} page(s), {listed['bytes_per_job']} B/job above idle"
    figure = f"P4 RSS MB on the rig, {listed.get('jobs', '?')} TorchJobs listed"
    return [limit(figure, None if rss is None else rss * MIB, ("<=", P4_LIMIT_MB), "MB", note)]


def writes_rows(writes: JsonObject) -> list[Row]:
    """P3 from bench_writes' JSON: N + 4 for every job; the namespace's first job also creates the shared
    Service, so its own budget is N + 5 and its count includes that create."""
    rest_figure, first_figure = "P3 API writes per job (worst but the first)", "P3 API writes, the first job"
    if not writes:
        why = _missing("bench_writes wrote no figures")
        return [Row(rest_figure, None, None, "<= N+4", False, None, why, False),
                Row(first_figure, None, None, "<= N+5", False, None, why, False)]  # fmt: skip
    n = int(writes["workers"])
    unattributed = int(writes.get("unattributed", 0))
    note = f"N={n}, mean {writes['mean']:.2f}" + (
        f"; {unattributed} writes of no job" if unattributed else ""
    )
    rows = [
        limit(rest_figure, writes.get("worst_rest"), ("<=", n + 4), "(N+4)", note),
        limit(first_figure, writes.get("first"), ("<=", n + 5), "(N+5)", "with the shared Service create"),
    ]
    return rows if not unattributed else [replace(r, passed=False) for r in rows]


def restarts_rows(restarts: JsonObject) -> list[Row]:
    """bench_restarts: duplicate pods across operator SIGKILLs during creation (must be 0)."""
    dup = restarts.get("duplicates")
    figure = (
        f"Duplicate pods, {restarts.get('restarts', '?')} SIGKILLs during {restarts.get('jobs', '?')} creates"
    )
    if dup is None:
        return [limit(figure, None, ("==", 0), "", "bench_restarts wrote no figures")]
    note = (
        f"{restarts['pods']}/{restarts['expected']} pods, {restarts['problems']} jobs wrong, "
        f"{restarts['pod_deletes']} pod deletes"
    )
    row = limit(figure, dup, ("==", 0), "", note)
    return [row if restarts.get("passed") else replace(row, passed=False)]


def render(rows: list[Row]) -> str:
    """The table as text."""

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"

    head = f"{'figure':<48} {'ours':>9} {'reference':>10} {'ratio':>6} {'target':>10}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[r.passed]
        ratio = "" if r.ratio is None else f"{'<' if r.at_least else ''}{r.ratio:.2f}"
        reference = num(r.reference) if r.measured_reference else ""
        reference = f">{reference}" if r.at_least else reference
        lines.append(
            f"{r.figure:<48} {num(r.ours):>9} {reference:>10} {ratio:>6} {r.target:>10}  {verdict}"
            + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)


def missed(rows: list[Row]) -> list[Row]:
    """Rows that fail the benchmark run: over their target, or without their data."""
    return [r for r in rows if r.passed is False]


def without_data(rows: list[Row]) -> list[Row]:
    """Rows whose figure nobody measured (a crash, a timeout, a reference that did not run)."""
    return [r for r in rows if r.note.startswith(NO_DATA)]


def write_json(path: Path, rows: list[Row], sources: JsonObject) -> None:
    """The table and every source figure (with time series), for history."""
    path.write_text(json.dumps({"rows": [asdict(r) for r in rows], "sources": sources}, indent=1))


def plot(scale: JsonObject, path: Path) -> bool:
    """Pods created and pods Running over time, one line per operator; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    runs = [
        (k, run)
        for k in ("ours", "vcjob", "jobset", "kubeflow_tuned", "kubeflow_default")
        if (run := scale.get(k) or {}).get("series")
    ]
    if not runs:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, column, title in ((axes[0], 1, "pods created"), (axes[1], 2, "pods Running")):
        for key, run in runs:
            series = run["series"]
            ax.plot([s[0] for s in series], [s[column] for s in series], label=_LABELS[key])
        ax.set_title(f"{title}: {scale['jobs']} jobs x {scale['workers']} workers")
        ax.set_xlabel("seconds since the first job was submitted")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pods")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


_LABELS = {
    "ours": "pyroclast (16 workers, QPS 200/400)",
    "vcjob": "Volcano job controller v1.14.1 (16 threads, QPS 200/400)",
    "jobset": "JobSet v0.12.0 + Job controller (16 threads each, QPS 200/400)",
    "kubeflow_tuned": "training-operator v1.9.4 tuned (16 threads, QPS 200/400)",
    "kubeflow_default": "training-operator v1.9.4 defaults (1 thread, QPS 20/30)",
}
