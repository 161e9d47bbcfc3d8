# pyright: strict
"""`pyroclast job`: submit, list, get, describe, logs, wait, suspend, resume and delete TorchJobs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from api import TorchJob
from api.runtime import RuntimeKind
from controller.runtime.client import Client
from controller.runtime.errors import Forbidden
from pyroclast import jobs as sdk
from pyroclast.cli_support import connection_flags, context_namespace, dump, err, run_command
from pyroclast.errors import EXIT_CODES_HELP, EXIT_FAILED, EXIT_OK
from pyroclast.estimate import estimate, estimate_text, match_of, samples, steps_to_run
from pyroclast.jobspec import JobSpecError, build_job, jobs_from_yaml, parse_nproc
from pyroclast.jobview import WaitFor, change_key, describe_text, jobs_table, state_line, worker_prefix
from pyroclast.runtimes import DEFAULT_NAMESPACE, RuntimeNotFoundError, get_runtime

EPILOG: Final = f"""\
{EXIT_CODES_HELP}
Before submitting, the job's queue must exist and be Open and its priority class must exist (checks the
caller may not read are skipped; --no-check skips them all). `logs` reads each worker's trainer container
through the pods/log API: a node without a kubelet (kwok) has no logs to give.
"""

Command = Callable[[Client, argparse.Namespace], Awaitable[int]]


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(job: TorchJob) -> dict[str, Any]:
    """The job's wire form without managedFields (as kubectl prints it)."""
    wire = job.to_k8s()
    wire.get("metadata", {}).pop("managedFields", None)
    return wire


# ---- verbs ----------------------------------------------------------------------------------------------


def _read_jobs(filename: str) -> list[TorchJob]:
    """The TorchJobs of a YAML file (- for stdin); raises JobSpecError."""
    source = "<stdin>" if filename == "-" else filename
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
    except OSError as exc:
        raise JobSpecError(f"-f {filename}: {exc.strerror}; give a readable YAML file (or -)") from None
    return jobs_from_yaml(text, source=source)


def _jobs_to_submit(args: argparse.Namespace) -> list[TorchJob]:
    """The jobs `submit` sends, from -f or from flags (never both); raises JobSpecError."""
    flags = [f"--{k.replace('_', '-')}" for k in _JOB_FLAGS if getattr(args, k) not in (None, False, [])]
    if args.filename:
        extra = [*([args.name] if args.name else []), *flags, *(["-- COMMAND"] if args.trailing else [])]
        if extra:
            raise JobSpecError(
                f"give either -f FILE or a NAME with flags, not both (-f with {' '.join(extra)})"
            )
        return _read_jobs(args.filename)
    if not args.name:
        raise JobSpecError("give a job NAME and --image (or --runtime) ... -- COMMAND, or -f FILE")
    return [
        build_job(
            args.name,
            image=args.image,
            command=args.trailing,
            nodes=args.nodes,
            min_nodes=args.min_nodes,
            max_nodes=args.max_nodes,
            nproc=parse_nproc(args.nproc) if args.nproc else None,
            gpus=args.gpus,
            cpu=args.cpu,
            memory=args.memory,
            queue=args.queue,
            priority_class=args.priority_class,
            preemptible=args.preemptible,
            env=args.env,
            suspend=args.suspend,
            runtime=args.runtime,
        )
    ]


_JOB_FLAGS: Final = (
    "image",
    "nodes",
    "min_nodes",
    "max_nodes",
    "nproc",
    "gpus",
    "cpu",
    "memory",
    "queue",
    "priority_class",
    "preemptible",
    "env",
    "suspend",
    "runtime",
)


def _parse_submit(args: argparse.Namespace) -> None:
    """Read and validate what `submit` sends once, before connecting (stdin can be read only once)."""
    args.jobs = _jobs_to_submit(args)


async def _submit(client: Client, args: argparse.Namespace) -> int:
    jobs: list[TorchJob] = args.jobs
    for job in jobs:
        ns = args.namespace or job.metadata.namespace or _ns(args)
        created = await sdk.submit_job(client, job, ns, check=args.check, dry_run=args.dry_run)
        if args.output:
            print(dump(_clean(created), args.output))
        else:
            suffix = " (dry run)" if args.dry_run else ""
            ref = job.spec.runtime_ref
            where = f"with {ref.kind} {ref.name}" if ref else f"to queue {job.spec.scheduling.queue}"
            print(f"torchjob/{created.metadata.name} submitted {where}{suffix}")
    return EXIT_OK


async def _list(client: Client, args: argparse.Namespace) -> int:
    namespace = None if args.all_namespaces else _ns(args)
    jobs = await sdk.list_jobs(client, namespace, queue=args.queue)
    if args.output in ("json", "yaml"):
        print(dump([_clean(j) for j in jobs], args.output))
    elif jobs:
        print(jobs_table(jobs, _now(), all_namespaces=args.all_namespaces))
    else:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"No TorchJobs in {where}.", file=sys.stderr)
    return EXIT_OK


async def _get(client: Client, args: argparse.Namespace) -> int:
    job = await sdk.get_job(client, args.name, _ns(args))
    if args.output in ("json", "yaml"):
        print(dump(_clean(job), args.output))
    else:
        print(jobs_table([job], _now()))
    return EXIT_OK


async def _describe(client: Client, args: argparse.Namespace) -> int:
    print(describe_text(await sdk.describe_job(client, args.name, _ns(args)), _now()))
    return EXIT_OK


async def _logs(client: Client, args: argparse.Namespace) -> int:
    failed: list[str] = []

    def on_error(index: int, pod: str, exc: Exception) -> None:
        message = getattr(exc, "message", "") or str(exc)
        print(f"{worker_prefix(index)}no logs from pod {pod}: {message}", file=sys.stderr)
        failed.append(pod)

    merged = args.worker is None
    async for line in sdk.job_logs(
        client,
        args.name,
        _ns(args),
        worker=args.worker,
        follow=args.follow,
        tail=args.tail,
        timestamps=args.timestamps,
        previous=args.previous,
        on_error=on_error,
    ):
        print(f"{worker_prefix(line.worker) if merged else ''}{line.text}", flush=args.follow)
    if failed:
        err(
            f"{len(failed)} worker(s) gave no logs. The apiserver reads logs from each node's kubelet; check "
            "the nodes are reachable (`kubectl get nodes`), and that the pods have started"
        )
        return EXIT_FAILED
    return EXIT_OK


class ProgressDisplay:
    """`wait`'s display: one line rewritten in place on a terminal, a new plain line per change elsewhere."""

    def __init__(self, out: TextIO, tty: bool):
        self.out = out
        self.tty = tty
        self.last: tuple[object, ...] | None = None

    def __call__(self, job: TorchJob) -> None:
        if self.tty:
            self.out.write("\r\x1b[K" + state_line(job, with_bar=True))
            self.out.flush()
            return
        key = change_key(job)
        if key != self.last:
            self.last = key
            print(f"{_now():%H:%M:%S} {state_line(job)}", file=self.out, flush=True)

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")


async def _wait(client: Client, args: argparse.Namespace) -> int:
    progress = ProgressDisplay(sys.stdout, sys.stdout.isatty() if args.progress is None else args.progress)
    try:
        job, code = await sdk.wait_job(
            client,
            args.name,
            _ns(args),
            until=WaitFor(args.for_),
            within=args.timeout,
            poll=args.poll,
            on_change=progress,
        )
    finally:
        progress.done()
    phase = job.status.phase.value if job.status and job.status.phase else "Pending"
    print(f"torchjob/{args.name} {phase}")
    if code != EXIT_OK:
        condition = job.status.condition(phase) if job.status else None
        err(f"TorchJob {args.name} {phase}: {condition.message if condition else 'no reason given'}")
    return code


def _parse_estimate(args: argparse.Namespace) -> None:
    """Read the job to estimate from -f before connecting (stdin can be read only once)."""
    if bool(args.name) == bool(args.filename):
        raise JobSpecError(
            "give either a job NAME (its own attempts count too) or -f FILE, not both or neither"
        )
    args.target = None
    if args.filename:
        source = "<stdin>" if args.filename == "-" else args.filename
        try:
            text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        except OSError as exc:
            raise JobSpecError(
                f"-f {args.filename}: {exc.strerror}; give a readable YAML file (or -)"
            ) from None
        args.target = jobs_from_yaml(text, source=source)[0]


async def _estimate(client: Client, args: argparse.Namespace) -> int:
    target: TorchJob | None = args.target
    if target is None:
        target = await sdk.get_job(client, str(args.name), _ns(args))
    else:
        target.metadata.namespace = target.metadata.namespace or _ns(args)
    runtime_spec = await _runtime_spec(client, target)
    jobs = await sdk.list_jobs(client, None if args.all_namespaces else target.metadata.namespace)
    measured = samples(target, jobs, runtime_spec)
    steps = steps_to_run(measured, args.steps)
    rows = estimate(measured, args.nodes, steps)
    name = str(target.metadata.name)
    print(estimate_text(name, steps, measured, rows, match_of(target, runtime_spec)))
    return EXIT_OK


async def _runtime_spec(client: Client, job: TorchJob) -> dict[str, Any] | None:
    """The spec of the runtime `job` names, when only it can give the job's image (not yet resolved); None
    when the runtime does not exist or the caller may not read it (then only the job's own attempts count)."""
    ref = job.spec.runtime_ref
    if ref is None or job.spec.image or (job.status is not None and job.status.runtime is not None):
        return None
    namespace = job.metadata.namespace or DEFAULT_NAMESPACE
    try:
        return (await get_runtime(client, ref.name, RuntimeKind(ref.kind), namespace)).spec.to_k8s()
    except (RuntimeNotFoundError, Forbidden):
        return None


def _node_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: give node counts >= 1 separated by commas, e.g. 1,2,4")
    return counts


async def _suspend(client: Client, args: argparse.Namespace) -> int:
    await sdk.suspend_job(client, args.name, _ns(args))
    print(f"torchjob/{args.name} suspended (pods and PodGroup are removed; `pyroclast job resume` continues)")
    return EXIT_OK


async def _resume(client: Client, args: argparse.Namespace) -> int:
    await sdk.resume_job(client, args.name, _ns(args))
    print(f"torchjob/{args.name} resumed (it queues again for its gang)")
    return EXIT_OK


async def _delete(client: Client, args: argparse.Namespace) -> int:
    await sdk.delete_job(client, args.name, _ns(args))
    print(f"torchjob/{args.name} deleted")
    return EXIT_OK


def _ns(args: argparse.Namespace) -> str:
    return args.namespace or context_namespace(args.kubeconfig, args.context, environ=os.environ)


# ---- parser ---------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    command: Command = args.job_func
    validators = {"submit": _parse_submit, "estimate": _parse_estimate}
    parse = validators.get(args.job_verb)
    validate = (lambda: parse(args)) if parse is not None else None
    return run_command(args, lambda client: command(client, args), noun="TorchJob", validate=validate)


def _submit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="job name (from flags; with -f the YAML names the job)")
    p.set_defaults(takes_command=True)  # what follows `--` is what torchrun runs: -- -m train --steps 10
    p.add_argument("-f", "--filename", help="YAML with kind: TorchJob documents (- for stdin)")
    p.add_argument("--image", help="container image with torch and the training code")
    p.add_argument(
        "--runtime",
        metavar="[KIND/]NAME",
        help="start from a runtime: NAME of a ClusterTorchRuntime, or TorchRuntime/NAME in the job's "
        "namespace (its image, env, volumes, queue, ...; flags override what it does not lock)",
    )
    p.add_argument("--nodes", type=int, help="worker pods (nodes); the count of a fixed-size job")
    p.add_argument("--min-nodes", type=int, help="elastic: fewest nodes (the gang minimum); with --max-nodes")
    p.add_argument("--max-nodes", type=int, help="elastic: most nodes; --nodes defaults to it")
    p.add_argument("--nproc", help="processes per node: a number, or auto (default), gpu, cpu")
    p.add_argument("--gpus", type=int, help="nvidia.com/gpu per node (a limit)")
    p.add_argument("--cpu", help="CPU request per node, e.g. 8 or 500m")
    p.add_argument("--memory", help="memory request per node, e.g. 64Gi")
    p.add_argument("--queue", help="Volcano queue (default: default)")
    p.add_argument("--priority-class", help="PriorityClass of the gang")
    p.add_argument(
        "--preemptible", action=argparse.BooleanOptionalAction, default=None, help="may be preempted"
    )
    p.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="trainer env (repeatable)"
    )
    p.add_argument("--suspend", action="store_true", help="create suspended (resume later)")
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the queue/priority checks")
    p.add_argument(
        "--dry-run", action="store_true", help="let the apiserver validate and default; store nothing"
    )
    p.add_argument("-o", "--output", choices=("json", "yaml"), help="print the created job")


def add_parser(subparsers: Any) -> None:
    """Register `pyroclast job` and its sub-commands."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "job", help="submit and follow TorchJobs", description=__doc__, epilog=EPILOG, formatter_class=fmt
    )
    common = connection_flags()
    common.add_argument(
        "-n", "--namespace", help="namespace (default: the kubeconfig context's, else default)"
    )
    parser.set_defaults(func=_run)
    sub = parser.add_subparsers(dest="job_verb", required=True, metavar="COMMAND")

    def verb(name: str, func: Command, help_: str, *, named: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help_, description=help_, epilog=EPILOG, formatter_class=fmt, parents=[common]
        )
        p.set_defaults(job_func=func)
        if named:
            p.add_argument("name", help="TorchJob name")
        return p

    p = verb("submit", _submit, "submit a TorchJob from YAML (-f) or flags", named=False)
    p.usage = (
        "pyroclast job submit (-f FILE | NAME (--image IMAGE | --runtime NAME) [flags] -- COMMAND [ARG...])"
    )
    _submit_flags(p)

    p = verb(
        "list", _list, "list TorchJobs: phase, ready/desired nodes, queue, restarts, progress", named=False
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument("--queue", help="only jobs in this Volcano queue")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    p = verb("get", _get, "show one TorchJob (a table row, or the object with -o json/yaml)")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    verb("describe", _describe, "status, conditions, PodGroup and the scheduler's reason, workers, events")

    p = verb("logs", _logs, "trainer logs: one worker (-w), or all merged with a [worker-N] prefix")
    p.add_argument("-w", "--worker", type=int, metavar="INDEX", help="only this worker (node rank)")
    p.add_argument("-f", "--follow", action="store_true", help="stream new lines until the workers end")
    p.add_argument("--tail", type=int, metavar="LINES", help="only the last LINES lines of each worker")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("-p", "--previous", action="store_true", help="the previous container's log")

    p = verb("wait", _wait, "wait until the job finishes (or runs); exit 0 succeeded, 5 failed, 6 timed out")
    p.add_argument("--for", dest="for_", choices=[w.value for w in WaitFor], default=WaitFor.FINISHED.value)
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after SECONDS (exit 6)")
    p.add_argument("--poll", type=float, default=sdk.WAIT_POLL, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one line updated in place (default: when stdout is a terminal)",
    )

    p = verb(
        "estimate",
        _estimate,
        "expected duration and cost at node counts, from measured step times of this job's earlier attempts "
        "and of finished jobs with its image",
        named=False,
    )
    p.add_argument("name", nargs="?", help="an existing TorchJob (or -f)")
    p.add_argument("-f", "--filename", help="YAML of the TorchJob to estimate (- for stdin)")
    p.add_argument("--nodes", type=_node_counts, required=True, help="node counts, e.g. 1,2,4")
    p.add_argument("--steps", type=int, help="steps to run (default: what the measured jobs ran)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="measured jobs from every namespace")

    verb("suspend", _suspend, "suspend: delete pods and PodGroup, keep the job (frees queue quota)")
    verb("resume", _resume, "resume a suspended job")
    verb("delete", _delete, "delete the job (its pods, PodGroup and Service go with it)")


__all__ = ["ProgressDisplay", "add_parser"]
