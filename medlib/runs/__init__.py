"""Every training the book needs as a *run* that one GPU, several GPUs or a Ray cluster can execute.

:func:`plan` lists a selection's runs with their state and the time left (``medlib runs plan``; the
pages' plans are :func:`plan_frame` of it); :func:`execute` trains what is not done, here or on Ray
(``medlib runs execute``): executing twice trains nothing twice.
"""

from medlib.runs.execute import Report, execute_one
from medlib.runs.plan import (PlannedRun, Selection, format_duration, plan, plan_frame, plan_json, select_runs,
                              summary)
from medlib.runs.rounds import execute
from medlib.runs.spec import Run, RunState, read_state

__all__ = ["Run", "RunState", "read_state", "Selection", "PlannedRun", "plan", "plan_frame", "plan_json",
           "select_runs", "summary", "format_duration", "execute", "execute_one", "Report"]
