"""``python -m medlib.runs plan|execute ...`` (the same as ``medlib runs ...``)."""

import sys

from medlib.cli.runs import main

if __name__ == "__main__":
    sys.exit(main(["runs", *sys.argv[1:]]))
