"""Test hook for tests/test_runs_ray.py: SIGKILL a Ray worker once a run's checkpoint is in place.

Every process started with this folder on ``PYTHONPATH`` imports it at start-up; it does nothing
unless ``$MEDLIB_TEST_KILL_AFTER_CHECKPOINT`` names a checkpoint path. Then an audit hook sees
the atomic rename that puts that checkpoint in place and kills the process at the next atomic
write that starts (the next checkpoint, or the final weights): the kill lands after a complete
checkpoint and before the run is done, as a preempted node or an OOM kill would. It kills once
(``$MEDLIB_TEST_KILL_MARKER`` records it), so the retry that resumes from the checkpoint finishes.
"""

import os
import signal
import sys

TARGET = os.environ.get("MEDLIB_TEST_KILL_AFTER_CHECKPOINT")
MARKER = os.environ.get("MEDLIB_TEST_KILL_MARKER")


def _hook(event: str, args: tuple, armed=[]) -> None:  # noqa: B006 (the list is the hook's state)
    if event == "os.rename" and len(args) > 1 and os.fspath(args[1]) == TARGET:
        armed.append(True)
    elif event == "tempfile.mkstemp" and armed and not os.path.exists(MARKER):
        open(MARKER, "w").close()
        print(f"[test] killing process {os.getpid()} after the checkpoint {TARGET}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


if TARGET and MARKER:
    sys.addaudithook(_hook)
