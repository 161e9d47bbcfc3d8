# pyright: strict
"""`pyroclast queue`: administer Volcano queues (create, list, get, update, open, close, delete, apply)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio

from api.quantity import parse_quantity
from api.queue import Queue, QueueState
from controller.runtime.client import Client
from controller.runtime.errors import AlreadyExists, NotFound
from pyroclast import queues as sdk
from pyroclast.cli_support import connection_flags, dump, err, run_command, sub_command
from pyroclast.errors import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from scheduling.queues import (
    QueueSpecError,
    allocation,
    build_queue,
    format_table,
    parse_resources,
    queue_rows,
    queues_from_yaml,
    rows_table,
    update_patch,
)
from scheduling.resources import display_quantity

EPILOG: Final = f"""\
{EXIT_CODES_HELP}
draining: `close` asks Volcano's queue-controller to close the queue. A Closed queue admits no new jobs
(PodGroups). While PodGroups remain the queue reports Closing; their jobs keep running, and it becomes
Closed when the last one is gone. `open` admits jobs again.
"""

Command = Callable[[Client, argparse.Namespace], Awaitable[int]]


def _resource_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-w", "--weight", type=int, help="share relative to other queues (1..65535)")
    p.add_argument(
        "--capability",
        action="append",
        default=[],
        metavar="RES=QTY",
        help="hard cap, e.g. --capability cpu=64,memory=256Gi,nvidia.com/gpu=8 (repeatable)",
    )
    p.add_argument(
        "--guarantee", action="append", default=[], metavar="RES=QTY", help="resources reserved for the queue"
    )
    p.add_argument(
        "--deserved", action="append", default=[], metavar="RES=QTY", help="fair share (capacity plugin)"
    )
    p.add_argument(
        "--reclaimable",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether other queues may reclaim resources above deserved (Volcano's default: yes)",
    )
    p.add_argument("--parent", help="parent queue (hierarchical queues need the capacity plugin)")
    p.add_argument("--priority", type=int, help="queue order (>= 0; higher goes first)")


def _spec_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "weight": args.weight,
        "capability": parse_resources(args.capability, "--capability"),
        "guarantee": parse_resources(args.guarantee, "--guarantee"),
        "deserved": parse_resources(args.deserved, "--deserved"),
        "reclaimable": args.reclaimable,
        "parent": args.parent,
        "priority": args.priority,
    }


def _state(queue: Queue) -> str:
    return queue.status.state.value if queue.status and queue.status.state else "Unknown"


async def _create(client: Client, args: argparse.Namespace) -> int:
    queue = build_queue(args.name, **_spec_kwargs(args))
    try:
        await sdk.create_queue(client, queue)
    except AlreadyExists:
        err(f"queue {args.name} already exists; change it with `pyroclast queue update {args.name}` or apply")
        return EXIT_REFUSED
    print(f"queue/{args.name} created")
    return EXIT_OK


async def _list(client: Client, args: argparse.Namespace) -> int:
    queues = await sdk.list_queues(client)
    rows = queue_rows(queues, await sdk.job_counts(client))
    if args.output == "table":
        print(rows_table(rows))
    else:
        print(dump([r.as_dict() for r in rows], args.output))
    return EXIT_OK


async def _get(client: Client, args: argparse.Namespace) -> int:
    queue = await sdk.get_queue(client, args.name)
    if args.output in ("json", "yaml"):
        print(dump(queue.to_k8s(), args.output))
        return EXIT_OK
    counts = (await sdk.job_counts(client)).get(args.name)
    row = queue_rows([queue], {args.name: counts} if counts else {})[0]
    spec = queue.spec
    guarantee = (spec.guarantee.resource if spec.guarantee else None) or {}
    fields = [
        ("Name", row.name),
        ("State", row.state),
        ("Weight", row.weight),
        ("Parent", row.parent),
        ("Priority", spec.priority if spec.priority is not None else "-"),
        ("Reclaimable", "yes" if spec.reclaimable is not False else "no"),
        ("Capability", _res(spec.capability)),
        ("Guarantee", _res(guarantee)),
        ("Deserved", _res(spec.deserved)),
        ("Allocated", allocation(queue)),
        ("Running jobs", row.running),
        ("Pending jobs", row.pending),
    ]
    width = max(len(k) for k, _ in fields) + 1
    print("\n".join(f"{k + ':':<{width}} {v}" for k, v in fields))
    return EXIT_OK


def _res(resources: dict[str, Any] | None) -> str:
    """`cpu=64, memory=256Gi`: in the same units as the allocation column, whatever the spec spelled."""
    shown = (f"{k}={display_quantity(parse_quantity(v))}" for k, v in sorted((resources or {}).items()))
    return ", ".join(shown) or "-"


async def _update(client: Client, args: argparse.Namespace) -> int:
    patch = update_patch(**_spec_kwargs(args))
    await sdk.update_queue(client, args.name, patch)
    print(f"queue/{args.name} updated")
    return EXIT_OK


async def _open(client: Client, args: argparse.Namespace) -> int:
    queue = await sdk.open_queue(client, args.name, wait=args.wait)
    print(f"queue/{args.name} {_state(queue) if args.wait > 0 else 'open requested'}")
    return EXIT_OK


async def _close(client: Client, args: argparse.Namespace) -> int:
    queue = await sdk.close_queue(client, args.name, wait=args.wait)
    if args.wait <= 0:
        print(f"queue/{args.name} close requested")
    elif queue.status is not None and queue.status.state is QueueState.CLOSING:
        print(
            f"queue/{args.name} Closing: it admits no new jobs; jobs already in it keep running, "
            "and it becomes Closed when the last one is gone"
        )
    else:
        print(
            f"queue/{args.name} Closed: it admits no new jobs "
            f"(reopen with `pyroclast queue open {args.name}`)"
        )
    return EXIT_OK


async def _delete(client: Client, args: argparse.Namespace) -> int:
    try:
        users = await sdk.delete_queue(client, args.name, force=args.force)
    except (sdk.QueueInUseError, sdk.ProtectedQueueError) as exc:
        err(str(exc))
        return EXIT_REFUSED
    if users:
        print(f"warning: TorchJobs still name queue {args.name}: {', '.join(users)}", file=sys.stderr)
    print(f"queue/{args.name} deleted")
    return EXIT_OK


async def _apply(client: Client, args: argparse.Namespace) -> int:
    source = "<stdin>" if args.filename == "-" else args.filename
    try:
        text = sys.stdin.read() if args.filename == "-" else await anyio.Path(args.filename).read_text()
    except OSError as exc:
        err(f"-f {args.filename}: {exc.strerror}; give a readable YAML file (or - for stdin)")
        return EXIT_USAGE
    queues = queues_from_yaml(text, source=source)
    if not queues:
        err(f"{source} holds no Queue documents; nothing applied")
        return EXIT_USAGE
    for result in await sdk.apply_queues(client, queues):
        print(f"queue/{result.name} {result.action}")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> None:
    """Raise QueueSpecError for flag values that can never work (before any connection is made)."""
    if args.queue_verb == "create":
        build_queue(args.name, **_spec_kwargs(args))
    elif args.queue_verb == "update":
        update_patch(**_spec_kwargs(args))


def _run(args: argparse.Namespace) -> int:
    command: Command = args.queue_func
    name: str | None = getattr(args, "name", None)

    def not_found(exc: NotFound) -> str | None:
        if name and exc.status.get("details", {}).get("kind") == "queues":
            return f"queue {name} not found; list queues with `pyroclast queue list`"
        return None

    return run_command(
        args,
        lambda client: command(client, args),
        noun="queue",
        validate=lambda: _validate(args),
        not_found=not_found,
        usage=(QueueSpecError,),
    )


def add_parser(subparsers: Any) -> None:
    """Register `pyroclast queue` and its sub-commands."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "queue", help="administer Volcano queues", description=__doc__, epilog=EPILOG, formatter_class=fmt
    )
    common = connection_flags()
    parser.set_defaults(func=_run)
    sub = parser.add_subparsers(dest="queue_verb", required=True, metavar="COMMAND")

    verb = sub_command(sub, common, EPILOG, "queue_func")

    p = verb("create", _create, "create a queue")
    p.add_argument("name")
    _resource_flags(p)

    p = verb("list", _list, "list queues: state, weight, allocated/capability, running and pending TorchJobs")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    p = verb("get", _get, "show one queue")
    p.add_argument("name")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    p = verb("update", _update, "change a queue's spec; given resources are merged into the existing ones")
    p.add_argument("name")
    _resource_flags(p)

    for name, func, help_ in (
        ("open", _open, "open a queue: it admits jobs again"),
        ("close", _close, "close a queue (drain): no new jobs; Closing until its jobs are gone, then Closed"),
    ):
        p = verb(name, func, help_)
        p.add_argument("name")
        p.add_argument(
            "--wait",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="wait for the new state (0: do not wait)",
        )

    p = verb("delete", _delete, "delete a queue; refused while TorchJobs use it unless --force")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="delete even though TorchJobs still name the queue")

    p = verb("apply", _apply, "create or update the queues in a YAML file, idempotently")
    p.add_argument("-f", "--filename", required=True, help="YAML with kind: Queue documents (- for stdin)")


__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "add_parser",
    "format_table",
]
