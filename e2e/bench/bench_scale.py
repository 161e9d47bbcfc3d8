"""Benchmark P1, P2, P4, P5: M TorchJobs x N workers against the raw apiserver rate and Kubeflow's operator.

Run: ``python -m e2e.bench.bench_scale [--jobs 1000] [--workers 8] [--json out.json] [--profile DIR]``.
One rig (watch cache on, audit off), kwok nodes for every pod, then in turn:

* raw: a plain concurrent client (32 in flight, unthrottled) creates M x N Pending pods -> pods/s;
* ours: ``pyroclast run --workers 16 --kube-api-qps 200 --kube-api-burst 400``, M TorchJobs submitted
  16 in flight; pods created and Running over time (a watch). P1 = our create rate / the raw rate;
* P5: the operator is SIGKILLed with every job Running and started again: seconds to /readyz (caches
  synced) and to steady (every job reconciled, queue empty); pod creates after the restart (duplicates);
* P4: the restarted operator's RSS with every job and pod cached, per cached object;
* vcjob: Volcano's own job controller (vc-controller-manager's job-controller, 16 threads, QPS 200/400),
  M batch.volcano.sh Jobs of one N-pod task each, a gang of N in the default queue;
* recovery: with every gang Running, one worker of each job deleted at once (TorchJob after P5, and vcjob):
  seconds until every gang is Running again, pods recreated and their rate;
* JobSet (built from its module, 16 threads, QPS 200/400) with Kubernetes' Job controller (16 syncs)
  making the pods: M JobSets of N one-pod Jobs each, pods scheduled by Volcano (no gang: JobSet has none);
* Kubeflow training-operator v1.9.4 (``--gang-scheduler-name=volcano``) tuned (16 threads, QPS 200/burst
  400) and with its defaults (1 thread, QPS 20/burst 30), M PyTorchJobs of N Worker replicas each.
  P2 = our time to every pod Running / the tuned reference's.

Each operator's run also reports its own CPU seconds per 1,000 pods, the apiserver's requests per pod by
verb/resource (every client: the phases differ only in the operator) and the operator's peak RSS.

Prints the figures; ``--json`` writes them with the time series (the runner turns them into the table/plots).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from controller.runtime.objects import JsonObject
from controller.runtime.resource import Resource
from controller.torchjob.kinds import TORCHJOBS
from e2e.bench import jobset, kubeflow
from e2e.bench.cpu import CpuMeter, format_cpu
from e2e.bench.harness import job, new_namespace, start_operator, start_rig, stop_operator, wait_until
from e2e.bench.peer import PeerUnavailable
from e2e.bench.recovery import recover
from e2e.bench.requests import RequestMeter, format_requests
from e2e.bench.restarts import pod_creates
from e2e.bench.scale import (
    Phase,
    clear_namespace,
    jobs_in_phase,
    raw_create_rate,
    ready,
    rss_mib,
    run_phase,
    wait_steady,
    writes,
)
from e2e.bench.vcjob import VCJOBS, vcjob
from e2e.cluster import Cluster, volcano
from e2e.cluster.pool import NodePool
from e2e.cluster.ports import HOST, free_port

PYTORCHJOBS = Resource("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs")
OURS_TUNED = ("--workers", "16", "--kube-api-qps", "200", "--kube-api-burst", "400")
PODS_PER_NODE = 100


def _ours(cluster: Cluster, args: argparse.Namespace, pool: NodePool, out: JsonObject) -> None:
    m, n = args.jobs, args.workers
    ns = new_namespace(cluster, "bench-ours")
    metrics_port, health_port = free_port(), free_port()
    log_path = cluster.workdir / "logs" / "bench-operator.log"

    def launch() -> subprocess.Popen[bytes]:
        return start_operator(
            cluster.kubeconfig, log_path, args=OURS_TUNED,
            metrics=f"{HOST}:{metrics_port}", health=f"{HOST}:{health_port}",
        )  # fmt: skip

    proc = launch()
    try:
        wait_until("operator ready", lambda: ready(health_port), 60, 0.2)
        idle_rss = rss_mib(proc.pid)
        out["ours_creates_only"] = _creates_only(cluster, args, pool, proc.pid)
        profiler = _profile(proc.pid, args.profile) if args.profile else None
        bodies = [job(f"tj-{i:05d}", pool, workers=n, succeed_after=None) for i in range(m)]
        meter, requests = _meter(cluster, operator=proc.pid), RequestMeter(cluster).start()
        phase = run_phase(cluster, "pyroclast", ns, TORCHJOBS, bodies, m * n, args.timeout)
        phase.extra["cpu"], phase.extra["requests"] = meter.stop(), requests.stop()
        _operator_figures(phase, proc.pid)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        out["ours"] = phase.summary()
        _print_phase(phase)
        # P5 kills an operator whose jobs are all Running in their status too, with nothing left to do.
        t = time.monotonic()
        wait_until(
            "every job's status Running",
            lambda: jobs_in_phase(cluster, ns, "torchjobs", "Running") == m,
            args.timeout,
            0.5,
        )
        wait_steady(metrics_port, 0)
        out["ours"]["status_caught_up_seconds"] = round(time.monotonic() - t, 2)
        print(f"every job's status Running and the operator idle {time.monotonic() - t:.1f} s after the pods")
        out["p5"], out["p4"], proc = _restart(cluster, proc, launch, health_port, metrics_port, m, n)
        out["p4"]["idle_rss_mib"] = round(idle_rss, 1)
        per_pod = (out["p4"]["rss_mib"] - idle_rss) * 2**20 / max(1, m * n)
        out["p4"]["bytes_per_pod"] = round(per_pod)
        print(f"P4: {per_pod:.0f} B per cached pod above the idle {idle_rss:.1f} MiB (jobs, PodGroups in)")
        if not args.skip_recovery:
            out["recovery_ours"] = _recovery(
                cluster, "pyroclast", ns, [b["metadata"]["name"] for b in bodies], args, proc.pid
            )
    finally:
        stop_operator(proc)
    clear_namespace(cluster, ns, [f"/apis/pyroclast.dev/v1alpha1/namespaces/{ns}/torchjobs"])


def _creates_only(cluster: Cluster, args: argparse.Namespace, pool: NodePool, operator: int) -> JsonObject:
    """P1 like for like: the raw client's pods are never scheduled, so here neither are ours (vc-scheduler
    stopped: no binds, no kwok status updates); the same jobs, timed until every pod is created."""
    m, n = args.jobs, args.workers
    ns = new_namespace(cluster, "bench-creates")
    bodies = [job(f"tj-{i:05d}", pool, workers=n, succeed_after=None) for i in range(m)]
    cluster.stop_component("vc-scheduler")
    try:
        meter, requests = _meter(cluster, operator=operator), RequestMeter(cluster).start()
        phase = run_phase(cluster, "pyroclast, scheduler stopped", ns, TORCHJOBS, bodies, m * n, args.timeout,
                          until="created")  # fmt: skip
        phase.extra["cpu"], phase.extra["requests"] = meter.stop(), requests.stop()
        _print_phase(phase)
        # Gone before the scheduler is back: else it binds these pods while the next phase is timed.
        clear_namespace(
            cluster, ns,
            [f"/apis/pyroclast.dev/v1alpha1/namespaces/{ns}/torchjobs",
             f"/apis/scheduling.volcano.sh/v1beta1/namespaces/{ns}/podgroups"],
        )  # fmt: skip
    finally:
        cluster.start_component("vc-scheduler")
    return phase.summary()


def _restart(
    cluster: Cluster,
    proc: subprocess.Popen[bytes],
    launch: Callable[[], subprocess.Popen[bytes]],
    health: int,
    metrics: int,
    m: int,
    n: int,
) -> tuple[JsonObject, JsonObject, subprocess.Popen[bytes]]:
    """P5 (SIGKILL with every job Running, start again) and P4 (the new process's RSS once steady)."""
    before = pod_creates(cluster)
    stop_operator(proc, signal.SIGKILL)
    t0 = time.monotonic()
    new = launch()
    wait_until("operator ready after SIGKILL", lambda: ready(health), 120, 0.05)
    synced = time.monotonic() - t0
    steady = wait_steady(metrics, m) + synced
    time.sleep(2.0)  # a late duplicate create would land now
    after = pod_creates(cluster)
    p5 = {
        "synced_seconds": round(synced, 2),
        "steady_seconds": round(steady, 2),
        "writes_after_restart": writes(metrics),
        "pod_creates_after_restart": after["201"] - before["201"],
        "conflicts_after_restart": after["409"] - before["409"],
    }
    rss = rss_mib(new.pid)
    p4 = {"rss_mib": round(rss, 1), "jobs": m, "pods": m * n}
    print(f"P5: synced {synced:.2f} s, steady {steady:.2f} s after SIGKILL; pod creates since: {p5}")
    print(f"P4: RSS {rss:.1f} MiB with {m} jobs / {m * n} pods cached")
    return p5, p4, new


def _profile(pid: int, directory: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the operator (collapsed stacks) until SIGINT."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "50",
            "--format", "raw", "--output", str(directory / "ours-p1.folded"), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kubeflow(cluster: Cluster, args: argparse.Namespace, pool: NodePool, out: JsonObject) -> None:
    try:
        binary = kubeflow.build()
        kubeflow.install(cluster)
    except (kubeflow.KubeflowUnavailable, subprocess.CalledProcessError) as err:
        out["kubeflow_error"] = str(err)
        print(f"Kubeflow training-operator unavailable: {err}")
        return
    out["kubeflow_version"] = kubeflow.version()
    m, n = args.jobs, args.workers
    for key, flags, timeout in (
        ("kubeflow_tuned", kubeflow.TUNED, args.timeout),
        ("kubeflow_default", kubeflow.DEFAULTS, args.default_timeout),
    ):
        ns = new_namespace(cluster, f"bench-{key.replace('_', '-')}")
        proc = kubeflow.start(cluster, binary, flags, cluster.workdir / "logs" / f"{key}.log")
        try:
            bodies = [kubeflow.pytorchjob(f"pj-{i:05d}", pool, workers=n) for i in range(m)]
            meter, requests = _meter(cluster, operator=proc.pid), RequestMeter(cluster).start()
            phase = run_phase(cluster, key, ns, PYTORCHJOBS, bodies, m * n, timeout)
            phase.extra["cpu"], phase.extra["requests"] = meter.stop(), requests.stop()
            _operator_figures(phase, proc.pid)
            out[key] = phase.summary() | {"flags": list(flags)}
            _print_phase(phase)
        finally:
            stop_operator(proc)
        clear_namespace(
            cluster, ns,
            [f"/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs",
             f"/apis/scheduling.volcano.sh/v1beta1/namespaces/{ns}/podgroups"],
        )  # fmt: skip


def _vcjob(cluster: Cluster, args: argparse.Namespace, pool: NodePool, out: JsonObject) -> None:
    """The same workload as Volcano Jobs, made into pods by vc-controller-manager's job controller."""
    m, n = args.jobs, args.workers
    pid = cluster.pid("vc-controller-manager")
    assert pid is not None, "vc-controller-manager is not running"
    ns = new_namespace(cluster, "bench-vcjob")
    bodies = [vcjob(f"vj-{i:05d}", pool, workers=n) for i in range(m)]
    meter, requests = _meter(cluster, operator=pid), RequestMeter(cluster).start()
    phase = run_phase(cluster, "vcjob", ns, VCJOBS, bodies, m * n, args.timeout)
    phase.extra["cpu"], phase.extra["requests"] = meter.stop(), requests.stop()
    _operator_figures(phase, pid)
    out["vcjob"] = phase.summary() | {"worker_threads": volcano.JOB_WORKER_THREADS}
    _print_phase(phase)
    if not args.skip_recovery and not phase.timed_out:
        jobs = [b["metadata"]["name"] for b in bodies]
        out["recovery_vcjob"] = _recovery(cluster, "vcjob", ns, jobs, args, pid)
    clear_namespace(
        cluster, ns,
        [f"/apis/batch.volcano.sh/v1alpha1/namespaces/{ns}/jobs",
         f"/apis/scheduling.volcano.sh/v1beta1/namespaces/{ns}/podgroups"],
    )  # fmt: skip


def _recovery(
    cluster: Cluster, label: str, ns: str, jobs: list[str], args: argparse.Namespace, operator: int
) -> JsonObject:
    """The recovery scenario, with every process's CPU seconds and the apiserver's requests over it (where
    the time goes)."""
    meter, requests = _meter(cluster, operator=operator), RequestMeter(cluster).start()
    figures = recover(cluster, ns, jobs, args.workers, args.timeout)
    figures["cpu"], figures["requests"] = meter.stop(), requests.stop()
    rate = figures["recreate_rate"]
    print(
        f"{label} recovery: {figures['killed']} workers deleted at once; every gang Running again after "
        f"{figures['recovered_seconds']} s, {figures['recreated']} pods recreated "
        f"({'n/a' if rate is None else f'{rate:.1f} pods/s'}){' TIMED OUT' if figures['timed_out'] else ''}",
        flush=True,
    )
    print(format_cpu(f"{label} recovery", figures["cpu"]), flush=True)
    print(format_requests(f"{label} recovery", figures["requests"]), flush=True)
    return figures


def _jobset(cluster: Cluster, args: argparse.Namespace, pool: NodePool, out: JsonObject) -> None:
    """The same workload as JobSets of N one-pod Jobs; Kubernetes' Job controller makes the pods."""
    try:
        binary = jobset.build()
        jobset.install(cluster)
    except (PeerUnavailable, subprocess.CalledProcessError) as err:
        out["jobset_error"] = str(err)
        print(f"JobSet unavailable: {err}")
        return
    out["jobset_version"] = jobset.version()
    m, n = args.jobs, args.workers
    ns = new_namespace(cluster, "bench-jobset")
    proc = jobset.start(cluster, binary, jobset.TUNED, cluster.workdir / "logs" / "jobset.log")
    try:
        bodies = [jobset.jobset(f"js-{i:05d}", pool, workers=n) for i in range(m)]
        meter, requests = _meter(cluster, operator=proc.pid), RequestMeter(cluster).start()
        phase = run_phase(cluster, "jobset", ns, jobset.JOBSETS, bodies, m * n, args.timeout)
        phase.extra["cpu"], phase.extra["requests"] = meter.stop(), requests.stop()
        # The pods are the Job controller's work: it counts as the JobSet's own.
        _operator_figures(phase, proc.pid, also=("kube-controller-manager",))
        out["jobset"] = phase.summary() | {"flags": list(jobset.TUNED)}
        _print_phase(phase)
    finally:
        stop_operator(proc)
    clear_namespace(
        cluster, ns,
        [f"/apis/jobset.x-k8s.io/v1alpha2/namespaces/{ns}/jobsets",
         f"/apis/batch/v1/namespaces/{ns}/jobs",
         f"/apis/scheduling.volcano.sh/v1beta1/namespaces/{ns}/podgroups"],
    )  # fmt: skip


def _operator_figures(phase: Phase, pid: int, also: tuple[str, ...] = ()) -> None:
    """The operator's own CPU seconds per 1,000 pods (with the processes named in `also`, that do part of
    its work), requests per pod and peak RSS (its own process), into the phase."""
    cpu: dict[str, float] = phase.extra["cpu"]
    pods = max(1, phase.pods)
    own = cpu["operator"] + sum(cpu[name] for name in also)
    phase.extra["operator_cpu_per_1000_pods"] = round(own * 1000 / pods, 3)
    if also:
        phase.extra["operator_cpu_includes"] = list(also)
    requests: dict[str, int] = phase.extra["requests"]
    phase.extra["requests_per_pod"] = {k: round(v / pods, 3) for k, v in requests.items()}
    phase.extra["operator_peak_rss_mib"] = round(rss_mib(pid, "VmHWM"), 1)
    print(
        f"{phase.label}: operator CPU {phase.extra['operator_cpu_per_1000_pods']:.2f} s per 1,000 pods, "
        f"peak RSS {phase.extra['operator_peak_rss_mib']:.1f} MiB, "
        f"{sum(requests.values()) / pods:.2f} apiserver requests per pod",
        flush=True,
    )


def _meter(cluster: Cluster, **pids: int) -> CpuMeter:
    """CPU seconds of every rig component, this process (the client/watcher) and `pids`, from now."""
    named = {name: pid for name in cluster.component_names() if (pid := cluster.pid(name)) is not None}
    return CpuMeter(named | {"bench": os.getpid()} | pids).start()


def _print_phase(phase: Phase) -> None:
    assert phase.timeline is not None
    rate = f"{phase.create_rate:.1f} pods/s" if phase.create_rate else "n/a"
    print(
        f"{phase.label}: {len(phase.timeline.created)}/{phase.pods} pods created "
        f"(last at {phase.created_seconds or float('nan'):.1f} s, {rate}), "
        f"{len(phase.timeline.running)} Running (all at {phase.running_seconds or float('nan'):.1f} s); "
        f"jobs submitted in {phase.submit_seconds:.1f} s{' TIMED OUT' if phase.timed_out else ''}",
        flush=True,
    )
    cpu = phase.extra.get("cpu")
    if isinstance(cpu, dict):
        print(format_cpu(phase.label, cpu), flush=True)
    requests = phase.extra.get("requests")
    if isinstance(requests, dict):
        print(format_requests(phase.label, requests), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=900, help="per operator run, seconds")
    parser.add_argument(
        "--default-timeout", type=float, default=600, help="for Kubeflow at its defaults (QPS 20), seconds"
    )
    parser.add_argument("--skip-kubeflow", action="store_true")
    parser.add_argument("--skip-vcjob", action="store_true", help="no Volcano job controller run")
    parser.add_argument("--skip-jobset", action="store_true", help="no JobSet run (no Go build)")
    parser.add_argument("--skip-recovery", action="store_true", help="no failure-recovery scenario")
    parser.add_argument("--skip-ours", action="store_true", help="only the raw rate and Kubeflow")
    parser.add_argument("--profile", type=Path, help="py-spy the operator during P1 into this directory")
    parser.add_argument("--json", type=Path, help="write the figures and time series here")
    args = parser.parse_args()
    pods = args.jobs * args.workers
    out: JsonObject = {"jobs": args.jobs, "workers": args.workers, "pods": pods}
    # A peer left out on purpose has no rows in the table (one that failed has rows without data).
    skipped = {
        "recovery": args.skip_recovery, "kubeflow": args.skip_kubeflow, "vcjob": args.skip_vcjob,
        "jobset": args.skip_jobset,
    }  # fmt: skip
    out |= {f"{name}_skipped": True for name, skip in skipped.items() if skip}
    cluster = start_rig(audit=False, volcano_jobs=not args.skip_vcjob, kube_jobs=not args.skip_jobset)
    try:
        pool = NodePool(cluster)
        pool(max(2, -(-pods // PODS_PER_NODE)), cpu=str(PODS_PER_NODE), memory="1Ti", gpus=8, pods=110)
        ns = new_namespace(cluster, "bench-raw")
        meter, requests = _meter(cluster), RequestMeter(cluster).start()
        out["raw_rate"] = raw_create_rate(cluster, ns, pods)
        out["raw_cpu"], out["raw_requests"] = meter.stop(), requests.stop()
        print(f"raw apiserver pod creates (plain client, 32 in flight): {out['raw_rate']:.1f} pods/s")
        print(format_cpu("raw", out["raw_cpu"]), flush=True)
        print(format_requests("raw", out["raw_requests"]), flush=True)
        clear_namespace(cluster, ns, [])
        if not args.skip_ours:
            _ours(cluster, args, pool, out)
        if not args.skip_vcjob:
            _vcjob(cluster, args, pool, out)
        if not args.skip_jobset:
            _jobset(cluster, args, pool, out)
        if not args.skip_kubeflow:
            _kubeflow(cluster, args, pool, out)
        pool.delete_all()
    finally:
        cluster.stop()
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
