"""`pyroclast crd`: print the TorchJob CRD rendered by :mod:`api.crd`, or write it into a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from api.crd import CRD_FILENAME, render, write


def _run(args: argparse.Namespace) -> int:
    if args.write is None:
        sys.stdout.write(render())
        return 0
    print(write(Path(args.write)))
    return 0


CRD_HELP: Final = (
    "Print the TorchJob CustomResourceDefinition (pyroclast.dev/v1alpha1) as YAML, or write it into a "
    "folder with --write. Install it with `pyroclast crd | kubectl apply --server-side -f -` before the "
    "operator starts; it is the same file as deploy/crd/ and the Helm chart's crds/."
)


def add_parser(subparsers: Any) -> None:
    """Register `pyroclast crd` on the command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "crd", help="print or write the TorchJob CRD", description=CRD_HELP
    )
    parser.add_argument("--write", metavar="DIR", help=f"write {CRD_FILENAME} into DIR instead of printing")
    parser.set_defaults(func=_run)
