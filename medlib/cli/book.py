"""``medlib book``: execute every notebook (papermill) and render the book (Jupyter Book)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from medlib.errors import MedlibError


def _cmd_book(args: argparse.Namespace) -> int:
    from medlib.book import build_book
    from medlib.paths import find_book_root
    from medlib.profiles import get_profile

    root = Path(args.book_root).resolve() if args.book_root else find_book_root()
    if root is None:
        raise MedlibError(f"no _config.yml/_toc.yml in {Path.cwd()} or above: run `medlib book` inside the book's "
                          "repository or pass --book-root")
    if args.fetch_assets:
        from medlib.offline import fetch_assets

        for pkg, path in fetch_assets(root):
            print(f"offline assets: {pkg.name}@{pkg.version} verified in {path}")
        return 0
    if args.dry_run:
        os.environ["MEDLIB_DRY_RUN"] = "1"  # read by start() in every notebook kernel
    build_book(root, get_profile(args.profile).name, only=args.only, execute=not args.no_execute,
               log_output=args.log_output, dry_run=args.dry_run, jobs=args.jobs)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "book",
        help="execute every notebook (papermill) and render the book (Jupyter Book)",
        description="Execute every notebook listed in _toc.yml into _build/staging with papermill (Part A's and "
                    "Part B's side by side, --jobs), then render the copies with jupyter-book into _build/html. "
                    "Stops at the first failing notebook, naming the notebook and the cell.",
    )
    p.add_argument("--profile", default="smoke", help="smoke (CPU, synthetic data), full (GPU, real data) or auto")
    p.add_argument("--dry-run", action="store_true",
                   help="the profile's code paths with every training capped to a step or two, random weights "
                        "and synthetic data at the real image sizes; every page says dry run")
    p.add_argument("--book-root", help="folder holding _config.yml and _toc.yml (default: found from cwd)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="execute only notebooks whose file name contains NAME")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="lanes of notebooks run at once: Part A and Part B side by side (default: one per GPU "
                        "on CUDA, else one per CPU core; 1 = one notebook at a time, in toc order)")
    p.add_argument("--fetch-assets", action="store_true",
                   help="only download and verify the book's pinned JavaScript (MathJax, widgets) into "
                        "$MEDLIB_HOME/npm, so later builds need no network (`make assets` does this)")
    p.add_argument("--no-execute", action="store_true", help="render the staged sources without executing")
    p.add_argument("--log-output", action="store_true", help="stream every cell's output while executing")
    p.set_defaults(func=_cmd_book)
