"""``medlib data synth|inspect|download``; a :class:`medlib.errors.DataError` reaches the main CLI (exit 2).

::

    medlib data synth NAME --out DIR [--seed S] [--size small|medium|real-size]
    medlib data inspect NAME --root DIR [--json]
    medlib data download NAME --root DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medlib.data import DATASET_NAMES
from medlib.data.inspect import format_inspection, inspect_dataset
from medlib.data.synth import SIZES, synthesize

__all__ = ["register"]


def _synth(args: argparse.Namespace) -> int:
    out = synthesize(args.name, args.out, seed=args.seed, size=args.size)
    print(f"wrote synthetic {args.name} (seed={args.seed}, size={args.size}) to {out}")
    print(format_inspection(inspect_dataset(args.name, out)))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    info = inspect_dataset(args.name, args.root)
    print(json.dumps(info, indent=2) if args.json else format_inspection(info))
    return 0


def _download(args: argparse.Namespace) -> int:
    from medlib.data.download import download_dataset

    path = download_dataset(args.name, Path(args.root))
    print(f"{args.name} is ready under {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``data`` command group to the top-level ``medlib`` sub-parsers."""
    data = subparsers.add_parser("data", help="synthesize, inspect or download datasets",
                                 description="Datasets of both papers: " + ", ".join(DATASET_NAMES))
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    p = commands.add_parser("synth", help="write a synthetic stand-in in the real on-disk layout")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--out", required=True, type=Path, help="folder to write (new, empty, or an earlier synth)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    p.add_argument("--size", choices=SIZES, default="small", help="small: seconds; medium: near real counts")
    p.set_defaults(func=_synth)

    p = commands.add_parser("inspect", help="count items per class and split")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--root", required=True, type=Path, help="folder the dataset was unpacked to (or above)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_inspect)

    p = commands.add_parser("download", help="download and unpack a dataset (derm7pt: explains how)")
    p.add_argument("name", choices=DATASET_NAMES)
    p.add_argument("--root", required=True, type=Path, help="folder to download into")
    p.set_defaults(func=_download)
    return data
