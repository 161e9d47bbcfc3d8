"""`pyroclast crd`: print the CRDs rendered by :mod:`api.crd`, or write them into a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from api.crd import CRD_FILENAME, render_all, write


def _run(args: argparse.Namespace) -> int:
    if args.write is None:
        sys.stdout.write(render_all())
        return 0
    for path in write(Path(args.write)):
        print(path)
    return 0


CRD_HELP: Final = (
    "Print the CustomResourceDefinitions (pyroclast.dev/v1alpha1: TorchJob, ClusterTorchRuntime, "
    "TorchRuntime) as YAML, or write them into a folder with --write. Install them with `pyroclast crd | "
    "kubectl apply --server-side -f -` before the operator starts; they are the same files as deploy/crd/ "
    "and the Helm chart's crds/."
)


def add_parser(subparsers: Any) -> None:
    """Register `pyroclast crd` on the command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "crd", help="print or write the CRDs", description=CRD_HELP
    )
    parser.add_argument(
        "--write",
        metavar="DIR",
        help=f"write {CRD_FILENAME} and the runtimes' CRDs into DIR instead of printing",
    )
    parser.set_defaults(func=_run)
