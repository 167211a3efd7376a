"""``medlib ammfm ...``: Paper B (AMMFM) model tools."""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def _cmd_params(args: argparse.Namespace) -> int:
    from medlib.ammfm.params import param_table

    rows = param_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'table':>5}  {'configuration':<46} {'ours':>12} {'ours M':>7} {'paper M':>8}  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        paper = "-" if r["paper_m"] is None else f"{r['paper_m']:.2f}"
        print(f"{r['table']:>5}  {r['label']:<46} {r['ours']:>12,} {r['ours_m']:>7.2f} {paper:>8}  {r['note']}")
    return 0


def register(subparsers) -> None:
    """Add ``medlib ammfm`` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser("ammfm", help="paper B (AMMFM): model tools", description=(
        "Tools for paper B, the asymmetric multi-modal fusion method (Tang & Lasser, 2024)."))
    sub = parser.add_subparsers(dest="ammfm_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "params", help="parameter counts of every configuration of Tables 5, 6, 7, 9, 10, ours beside the paper's",
        description=("Build every model configuration of the paper's parameter columns (random weights, meta device: "
                     "no download, no memory) and print its parameter count next to the paper's, with a match flag."))
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a table")
    p.set_defaults(func=_cmd_params)
