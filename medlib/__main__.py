"""``python -m medlib`` — same as the ``medlib`` console script."""

from medlib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
