"""``python -m medlib.runs plan|execute ...`` (the same as ``medlib runs ...``)."""

import sys

from medlib.runs.commands import main

if __name__ == "__main__":
    sys.exit(main(["runs", *sys.argv[1:]]))
