"""``medlib runs plan|execute`` (also ``python -m medlib.runs``): the book's trainings as runs (:mod:`medlib.runs`)."""

from __future__ import annotations

import argparse
import json
import sys

from medlib.cli import bounded_int
from medlib.errors import MedlibError

__all__ = ["register", "cmd_plan", "cmd_execute", "selection_of"]


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="auto", help="smoke, full or auto (default: $MEDLIB_PROFILE, else by hardware)")
    p.add_argument("--paper", choices=("a", "b", "beyond"),
                   help="only Paper A (data vectors), Paper B (AMMFM) or the Beyond chapter (federations, partitions)")
    p.add_argument("--table", help="only the runs of this table of --paper (A: 1-3, B: 2-10)")
    p.add_argument("--dataset", nargs="+", metavar="NAME", help="Paper A, beyond: only these datasets")
    p.add_argument("--seed", nargs="+", type=bounded_int(0, 2**32), metavar="SEED",
                   help="Paper A, beyond: only these seeds; Paper B: the first run's seed")
    p.add_argument("--config", nargs="+", metavar="NAME", help="Paper B: only these configurations (e.g. MN-ST-aab)")
    p.add_argument("--runs", type=int, metavar="N", help="Paper B: the first N runs of each configuration")


def selection_of(args: argparse.Namespace):
    from medlib.runs.plan import Selection

    if args.runs is not None and args.runs < 1:
        raise MedlibError(f"--runs {args.runs}: expected a positive number of runs per configuration")
    return Selection(paper=args.paper, table=args.table,
                     datasets=tuple(args.dataset) if args.dataset else None,
                     seeds=tuple(args.seed) if args.seed else None,
                     configs=tuple(args.config) if args.config else None, n_runs=args.runs)


def cmd_plan(args: argparse.Namespace) -> int:
    from medlib.profiles import get_profile, is_dry_run
    from medlib.runs.plan import format_plan, plan, plan_json

    P = get_profile(args.profile, dry=is_dry_run())
    planned = plan(P, selection_of(args))
    if args.json:
        print(json.dumps(plan_json(planned, P), indent=1))
    else:
        print(f"profile {P.label}")
        print(format_plan(planned))
    return 0


def cmd_execute(args: argparse.Namespace) -> int:
    from medlib.profiles import get_profile, is_dry_run
    from medlib.runs.rounds import execute

    P = get_profile(args.profile, dry=is_dry_run())
    options = {}
    if args.executor == "ray":
        options = {"address": args.address, "gpus_per_run": args.gpus_per_run, "cpus_per_run": args.cpus_per_run,
                   "max_retries": args.max_retries, "num_cpus": args.num_cpus}
    elif args.address:
        raise MedlibError("--address names a Ray cluster: use it with --executor ray")
    report = execute(P, selection_of(args), executor=args.executor, **options)
    print(f"[runs] trained {len(report.trained)} run(s), {len(report.skipped)} already done"
          + (f", {len(report.resumed)} resumed from a checkpoint" if report.resumed else "")
          + (f", {len(report.failed)} failed" if report.failed else ""), flush=True)
    for run_id, message in report.failed.items():
        print(f"  failed {run_id}: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    return 1 if report.failed else 0


def register(subparsers) -> None:
    runs = subparsers.add_parser(
        "runs", help="every training the book needs, as runs: plan them, execute them (locally or on Ray)",
        description="Every training the notebooks need is a run named by the key of its artifacts under "
                    "$MEDLIB_HOME. `plan` lists them with their state; `execute` trains the missing and "
                    "partial ones, here or on a Ray cluster whose nodes share $MEDLIB_HOME.")
    sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    p = sub.add_parser("plan", help="list the runs with state (done / partial / missing) and estimated cost")
    _add_selection(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)
    e = sub.add_parser("execute", help="train the runs that are not done (partial ones resume)")
    _add_selection(e)
    e.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one after the other in this process; ray: one Ray task per run")
    e.add_argument("--address", help="Ray cluster to join (e.g. auto); default: start a local Ray")
    e.add_argument("--gpus-per-run", type=float, default=None,
                   help="GPUs per run on Ray (default: 1 when this machine or the cluster has GPUs, else 0)")
    e.add_argument("--cpus-per-run", type=int, default=1, help="CPUs per run on Ray (default 1)")
    e.add_argument("--num-cpus", type=int, help="CPUs of a local Ray started here (default: all)")
    e.add_argument("--max-retries", type=int, default=3, help="Ray retries of a failed or killed run (default 3)")
    e.add_argument("--json", action="store_true", help="print what was trained, skipped, resumed and failed as JSON")
    e.set_defaults(func=cmd_execute)


def main(argv: list[str] | None = None) -> int:
    """``python -m medlib.runs``: the same sub-commands without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="medlib")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MedlibError as exc:
        print(f"medlib: error: {exc}", file=sys.stderr)
        return 2
