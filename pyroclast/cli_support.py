# pyright: strict
"""What every cluster-facing `pyroclast` command shares: connection flags, the connect-run-explain loop,
and output helpers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from controller.runtime import tracing
from controller.runtime.client import Client
from controller.runtime.errors import NotFound, TransportError
from controller.runtime.objects import JsonObject
from pyroclast.errors import EXIT_INTERRUPTED, EXIT_USAGE, CredentialsError, UsageError, explain

_tracer = trace.get_tracer("pyroclast.cli")
CLI_SERVICE = "pyroclast-cli"
"""The OpenTelemetry service name of the command's spans, unless OTEL_SERVICE_NAME says otherwise."""

Body = Callable[[Client], Awaitable[int]]


def err(message: str) -> None:
    """One `error: ...` line on stderr."""
    print(f"error: {message}", file=sys.stderr)


def dump(obj: Any, output: str) -> str:
    """`obj` as indented JSON (`output == "json"`) or block YAML."""
    if output == "json":
        return json.dumps(obj, indent=2, sort_keys=True)
    return yaml.safe_dump(obj, sort_keys=False).rstrip()


def connection_flags() -> argparse.ArgumentParser:
    """A parent parser with --kubeconfig and --context."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    common.add_argument("--context", help="kubeconfig context")
    return common


IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def context_namespace(
    kubeconfig: str | Path | None, context: str | None, *, environ: Mapping[str, str]
) -> str:
    """The namespace kubectl would use without -n: the kubeconfig context's, else the pod's own (in-cluster),
    else `default`. Files that cannot be read count as absent: connecting reports them properly."""
    paths = (
        [Path(kubeconfig).expanduser()]
        if kubeconfig
        else [Path(p) for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        or [Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"]
    )
    configs: list[Mapping[str, Any]] = []
    for path in paths:
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(loaded, Mapping):
            configs.append(cast("Mapping[str, Any]", loaded))
    if configs:
        # KUBECONFIG merging: the first file that sets current-context wins, and so does the first context.
        current = context or next(
            (str(c["current-context"]) for c in configs if c.get("current-context")), ""
        )
        for config in configs:
            entries: list[Any] = config.get("contexts") or []
            for entry in entries:
                if isinstance(entry, dict) and cast(JsonObject, entry).get("name") == current:
                    body: JsonObject = cast(JsonObject, entry).get("context") or {}
                    return str(body.get("namespace") or "default")
        return "default"
    try:
        return IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


async def connect(kubeconfig: str | Path | None, context: str | None) -> Client:
    """`Client.connect`, with its failures sorted into unreachable (TransportError) and bad credentials."""
    try:
        return await Client.connect(kubeconfig, context)
    except (httpx.TransportError, OSError) as exc:  # kr8s may ask the server while it connects
        raise TransportError(str(exc) or type(exc).__name__) from exc
    except Exception as exc:  # kr8s raises ValueError or its own errors for unusable credentials
        where = kubeconfig or "KUBECONFIG / ~/.kube/config / in-cluster service account"
        raise CredentialsError(
            f"cannot load cluster credentials from {where}: {exc}. Pass --kubeconfig FILE (and --context)"
        ) from exc


def sub_command(
    sub: Any, common: argparse.ArgumentParser, epilog: str, key: str
) -> Callable[[str, object, str], argparse.ArgumentParser]:
    """`verb(name, func, help)`: adds sub-command `name` of `sub` (connection flags from `common`, `epilog`
    under its help), whose function is stored in `args.<key>`."""

    def verb(name: str, func: object, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        p.set_defaults(**{key: func})
        return p

    return verb


def command_name(args: argparse.Namespace) -> str:
    """`pyroclast job submit`: the command line's verbs, the name of its span."""
    verbs = [getattr(args, k, None) for k in ("verb", "job_verb", "queue_verb", "runtime_verb")]
    return " ".join(["pyroclast", *(str(v) for v in verbs if v)])


def run_command(
    args: argparse.Namespace,
    body: Body,
    *,
    noun: str,
    validate: Callable[[], object] | None = None,
    not_found: Callable[[NotFound], str | None] | None = None,
    usage: tuple[type[Exception], ...] = (),
) -> int:
    """Validate (usage errors first, without touching the cluster), connect, run `body`, and turn every
    error a person can act on into one message on stderr and its exit code. `usage` lists the pure
    halves' error types (e.g. QueueSpecError) that mean a bad flag or document: exit 2."""

    async def go() -> int:
        with _tracer.start_as_current_span(command_name(args)):
            return await body(await connect(args.kubeconfig, args.context))

    # The standard OTEL_* variables export the command's spans; each command is one trace, which a submitted
    # TorchJob carries on to the operator (pyroclast.jobs.submit_job).
    provider = tracing.configure_from_env(service_name=CLI_SERVICE)
    try:
        if validate is not None:
            validate()
        return anyio.run(go)
    except usage as exc:
        err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C during `job wait` or `job logs -f`: stop quietly, as a shell does
        return EXIT_INTERRUPTED
    except Exception as exc:
        explained = explain(exc, noun=noun, not_found=not_found)
        if explained is None:
            raise
        message, code = explained
        err(message)
        return code
    finally:
        if isinstance(provider, SdkTracerProvider):
            provider.force_flush()  # a short-lived process: export before exiting, not at interpreter exit


__all__ = [
    "Body",
    "UsageError",
    "connect",
    "connection_flags",
    "context_namespace",
    "dump",
    "err",
    "run_command",
]
