"""The ``medlib`` command line (also ``python -m medlib``).

Each feature module registers its own sub-commands with a ``register(subparsers)``
function; this file only assembles them and turns user-fixable errors into a clean
message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from medlib import __version__
from medlib.errors import MedlibError

# Feature modules that add sub-commands; each exposes register(subparsers).
_COMMAND_MODULES = (
    "medlib.data.cli",
    "medlib.paper_a_cli",
    "medlib.ammfm.cli",
)


def _find_book_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").is_file() and (folder / "_config.yml").is_file():
            return folder
    raise MedlibError(
        f"no _config.yml/_toc.yml in {start} or above: run `medlib book` inside the book's repository "
        "or pass --book-root"
    )


def _cmd_book(args: argparse.Namespace) -> int:
    from medlib.book import build_book
    from medlib.profiles import get_profile

    profile = get_profile(args.profile).name
    root = Path(args.book_root).resolve() if args.book_root else _find_book_root(Path.cwd())
    build_book(
        root,
        profile,
        only=args.only,
        execute=not args.no_execute,
        log_output=args.log_output,
    )
    return 0


def _register_book(subparsers) -> None:
    p = subparsers.add_parser(
        "book",
        help="execute every notebook (papermill) and render the book (Jupyter Book)",
        description=(
            "Execute every notebook listed in _toc.yml, in order, into _build/staging with "
            "papermill, then render the executed copies with jupyter-book into _build/html. "
            "Stops at the first failing notebook, naming the notebook and the cell."
        ),
    )
    p.add_argument("--profile", default="smoke", help="smoke (CPU, synthetic data), full (GPU, real data) or auto")
    p.add_argument("--book-root", help="folder holding _config.yml and _toc.yml (default: found from cwd)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="execute only notebooks whose file name contains NAME")
    p.add_argument("--no-execute", action="store_true", help="render the staged sources without executing")
    p.add_argument("--log-output", action="store_true", help="stream every cell's output while executing")
    p.set_defaults(func=_cmd_book)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medlib",
        description="medlib: reproduce the data-vectors (Tian et al. 2024) and AMMFM (Tang & Lasser 2024) papers.",
    )
    parser.add_argument("--version", action="version", version=f"medlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_book(sub)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except MedlibError as exc:
        print(f"medlib: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medlib: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
