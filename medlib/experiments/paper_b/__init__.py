"""Paper B's experiments (Tang & Lasser 2024, §4): Tables 1–10, SWA/TTA checks and Part B's figures.

Modules: configs (the tables' models), runs (data, training, cache keys), metrics (Eq. 4 searched
on valid, scored on test; mean ± std and best run), tables, claims, analysis, plots, paper (quoted numbers).
Each module's ``__all__`` is this package's API.
"""

from __future__ import annotations

from medlib.errors import MedlibError  # noqa: F401
from medlib.io import load_weights  # noqa: F401

from .analysis import *  # noqa: F401,F403
from .claims import *  # noqa: F401,F403
from .configs import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .paper import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .runs import *  # noqa: F401,F403
from .runs import _RUN_CACHE, _eval_batch  # noqa: F401
from .tables import *  # noqa: F401,F403
