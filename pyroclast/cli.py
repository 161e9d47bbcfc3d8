"""The `pyroclast` command. Each verb lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# verb -> module defining `add_parser(subparsers) -> None`; the parser's `func` runs the verb and returns
# the exit code.
_VERBS: dict[str, str] = {
    "crd": "pyroclast.crd_cli",
    "run": "pyroclast.operator",
    "queue": "pyroclast.queue_cli",
    "job": "pyroclast.job_cli",
    "runtime": "pyroclast.runtime_cli",
}

Handler = Callable[[argparse.Namespace], int]
DESCRIPTION = (
    "Distributed PyTorch training on Kubernetes with Volcano gangs: run the TorchJob operator (run), "
    "submit and follow jobs (job), administer Volcano queues (queue), read runtimes (runtime), print the "
    "CRDs (crd). "
    "`pyroclast VERB --help` for each."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyroclast", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in _VERBS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is a command line for the job (`job submit ... -- -m train`).
    trailing: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, trailing = words[:cut], words[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(words)
    if trailing and not getattr(args, "takes_command", False):
        parser.error(f"unexpected arguments after --: {' '.join(trailing)}")
    args.trailing = trailing
    func: Handler = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
