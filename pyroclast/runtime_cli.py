# pyright: strict
"""`pyroclast runtime`: list and show the runtimes (ClusterTorchRuntime, TorchRuntime) jobs can name."""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final

from api.runtime import RuntimeKind
from controller.runtime.client import Client
from pyroclast import runtimes as sdk
from pyroclast.cli_support import connection_flags, context_namespace, dump, run_command, sub_command
from pyroclast.errors import EXIT_CODES_HELP, EXIT_OK

EPILOG: Final = f"""\
{EXIT_CODES_HELP}
A job names a runtime with spec.runtimeRef (or `pyroclast job submit --runtime NAME`) and takes its
defaults: image, env, volumes, tolerations, queue, ... The job's own values win except on the runtime's
locked paths. The runtime is read once, when the job is first reconciled: editing it later changes no job
already running.
"""

Command = Callable[[Client, argparse.Namespace], Awaitable[int]]
HEADERS: Final = ("KIND", "NAME", "NAMESPACE", "IMAGE", "QUEUE", "LOCKED")


def runtime_row(runtime: sdk.Runtime) -> tuple[str, ...]:
    """One table row: kind, name, namespace (- for cluster-wide), default image and queue, locked paths."""
    defaults: dict[str, Any] = runtime.spec.defaults or {}
    scheduling: dict[str, Any] = defaults.get("scheduling") or {}
    return (
        runtime.kind,
        runtime.metadata.name or "",
        runtime.metadata.namespace or "-",
        str(defaults.get("image") or "-"),
        str(scheduling.get("queue") or "-"),
        ",".join(runtime.spec.locked or []) or "-",
    )


def runtimes_table(runtimes: list[sdk.Runtime]) -> str:
    """Aligned columns, as kubectl prints them."""
    rows = [HEADERS, *(runtime_row(r) for r in runtimes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _ns(args: argparse.Namespace) -> str:
    return args.namespace or context_namespace(args.kubeconfig, args.context, environ=os.environ)


async def _list(client: Client, args: argparse.Namespace) -> int:
    found = await sdk.list_runtimes(client, None if args.all_namespaces else _ns(args))
    if args.output in ("json", "yaml"):
        print(dump([r.to_k8s() for r in found], args.output))
    elif found:
        print(runtimes_table(found))
    else:
        print("no runtimes")
    return EXIT_OK


async def _get(client: Client, args: argparse.Namespace) -> int:
    kind, name = sdk.parse_ref(args.name)
    runtime = await sdk.get_runtime(client, name, kind, _ns(args))
    if args.output == "table":
        print(runtimes_table([runtime]))
    else:
        print(dump(runtime.to_k8s(), args.output))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    command: Command = args.runtime_func
    return run_command(args, lambda client: command(client, args), noun="runtime", usage=(ValueError,))


def add_parser(subparsers: Any) -> None:
    """Register `pyroclast runtime` and its sub-commands."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "runtime", help="list and show runtimes", description=__doc__, epilog=EPILOG, formatter_class=fmt
    )
    common = connection_flags()
    common.add_argument("-n", "--namespace", help="namespace of TorchRuntimes (default: the context's)")
    parser.set_defaults(func=_run)
    sub = parser.add_subparsers(dest="runtime_verb", required=True, metavar="COMMAND")

    verb = sub_command(sub, common, EPILOG, "runtime_func")

    p = verb("list", _list, "list ClusterTorchRuntimes and the namespace's TorchRuntimes")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="TorchRuntimes of every namespace")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    p = verb("get", _get, "show one runtime: its defaults and locked paths")
    p.add_argument(
        "name", help=f"NAME of a {RuntimeKind.CLUSTER}, or {RuntimeKind.NAMESPACED}/NAME in the namespace"
    )
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="yaml")
