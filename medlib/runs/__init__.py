"""Every training the book needs, as a *run* that one GPU, several GPUs or a Ray cluster can execute.

A :class:`Run` is one training — Paper A: θ_pre (smoke), one site's fine-tuning or the full
training of a dataset and seed; Paper B: one run of one configuration — named by the key that
the paper's own code gives its artifacts under ``$MEDLIB_HOME``. The notebooks ask for the same
artifacts: when a run is done they read it, else they train it as before.

* :func:`plan` — the runs of a selection (paper, table, datasets, seeds, configurations), each
  done / partial (epochs in its checkpoint) / missing, with the seconds left estimated from the
  epoch times recorded in the runs' histories (``medlib runs plan``).
* :func:`execute` — train what is not done, ``executor="local"`` (one after the other here) or
  ``"ray"`` (one Ray task per run, retried and resumed from its checkpoint when a worker dies;
  ``medlib runs execute``). Executing twice trains nothing twice.

Ray is optional (``pip install 'medlib[cluster]'``) and imported by the Ray executor only.
"""

from medlib.runs.execute import Report, execute_one
from medlib.runs.plan import PlannedRun, Selection, plan, plan_json, select_runs
from medlib.runs.rounds import execute
from medlib.runs.spec import Run, RunState, read_state

__all__ = ["Run", "RunState", "read_state", "Selection", "PlannedRun", "plan", "plan_json", "select_runs",
           "execute", "execute_one", "Report"]
