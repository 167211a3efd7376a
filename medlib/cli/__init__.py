"""The ``medlib`` command line (also ``python -m medlib``): one module per command group, each with
``register(subparsers)``; user-fixable errors (:class:`~medlib.errors.MedlibError`) exit 2 with one line."""

from __future__ import annotations

import argparse
import importlib
import sys

from medlib import __version__
from medlib.errors import MedlibError

# in the order `medlib --help` lists them: book; data synth|inspect|download; Paper A as a hospital workflow
# (pretrained, finetune, merge, restore-bn, evaluate); ammfm params; runs plan|execute
_COMMAND_MODULES = ("book", "data", "hospital", "ammfm", "runs")


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors on one line (no usage block above them), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bounded_int(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high) (high None: no bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or high is not None and value >= high:
            bound = f"{low} <= value < {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected {bound}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="medlib",
        description="medlib: reproduce the data-vectors (Tian et al. 2024) and AMMFM (Tang & Lasser 2024) papers.",
    )
    parser.add_argument("--version", action="version", version=f"medlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"medlib.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if getattr(args, "profile", None) is not None:  # an unknown --profile is refused before any work
            from medlib.profiles import get_profile

            get_profile(args.profile)
        return int(args.func(args) or 0)
    except MedlibError as exc:  # one line, whatever the message (some list offending keys line by line)
        print("medlib: error: " + "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medlib: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
