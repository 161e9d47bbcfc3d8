"""The `pyroclast` command. Each verb lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# verb -> module defining `add_parser(subparsers) -> None`; the parser's `func` runs the verb and returns
# the exit code.
_VERBS: dict[str, str] = {
    "crd": "api.crd",
    "run": "pyroclast.operator",
    "queue": "pyroclast.queue_cli",
}

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyroclast", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in _VERBS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Handler = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
