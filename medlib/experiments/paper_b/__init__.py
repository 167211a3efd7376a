"""Paper B's experiments (Tang & Lasser 2024, §4): Tables 1–10, SWA/TTA checks and Part B's figures.

One module per concern:

* :mod:`.configs` — :class:`Config` (which backbone sees which image, which fusion block) and
  every table's rows (:func:`table_configs`).
* :mod:`.runs` — derm7pt as image pairs (:func:`load_pairs`), training and predicting one run
  (:func:`train_config`), several runs (:func:`run_config`), the cache keys (:func:`run_key`) and
  the learning-rate schedule (:func:`training_config`).
* :mod:`.metrics` — a run's test metrics with Eq. 4's weights searched on valid; mean ± std and
  best run over runs (:class:`ConfigResult`).
* :mod:`.tables` — one function per table, ``table1`` … ``table10``.
* :mod:`.claims` — the comparisons the paper draws, checked on our runs.
* :mod:`.analysis` — evaluation variants, recipe, costs, weight surface, attention, shapes.
* :mod:`.plots` — the figures.
* :mod:`.paper` — the numbers quoted from the paper.
"""

from __future__ import annotations

from medlib.ammfm.tasks import AUC_CATEGORIES, MELANOMA_CATEGORIES
from medlib.errors import MedlibError
from medlib.io import load_weights
from medlib.train import fit

from .analysis import (DISPLAY_SIZE, attention_example, attention_logits_at_init, augmentation_text, block_costs,
                       branch_table, example_cases, framework_shapes, positions_holding, settings_table, tradeoff, variants_table,
                       weight_surface)
from .claims import (CLAIMS, CLOSE_TOLERANCE, MASS_SHARE, attention_spread, claims, claims_table, compare,
                     recipe_agreement)
from .configs import ABBREVIATIONS, Config, all_configs, table_configs, with_runs
from .metrics import HEADLINE, ConfigResult, branch_metrics, never_predicted, run_metrics
from .paper import (CATEGORY_COLUMNS, MELANOMA_COLUMNS, PAPER_BEST, PAPER_MEAN, PAPER_ROWS_AVG, PAPER_SETTINGS,
                    PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3, PAPER_TABLE3_COLUMNS, PAPER_TABLE4, PAPER_TABLE5,
                    PAPER_TABLE8, paper_avg_auc_check)
from .plots import (GLANCE_TABLES, glance_frame, glance_points, plot_attention, plot_attention_block, plot_claims,
                    plot_framework, plot_history, plot_pairs, plot_params, plot_saturation,
                    plot_tradeoff, plot_weight_surface)
from .runs import (EXPERIMENT_VERSION, RESIZE_FIT, PairBatches, PairData, RunResult, _RUN_CACHE, _eval_batch,
                   load_model, load_pairs, run_config, run_key, train_config, training_config, training_plan)
from .tables import (headline_gaps, table1, table2, table3, table4, table5, table6, table7, table8, table9, table10,
                     clinic_is_derm_cases)

__all__ = [
    "Config", "PairData", "PairBatches", "RunResult", "ConfigResult", "load_pairs", "train_config", "run_config",
    "load_model", "run_key", "training_config", "training_plan", "run_metrics", "branch_metrics", "never_predicted", "table_configs",
    "all_configs", "with_runs", "HEADLINE", "RESIZE_FIT", "EXPERIMENT_VERSION", "ABBREVIATIONS",
    "PAPER_TABLE1", "PAPER_TABLE2", "PAPER_TABLE3", "PAPER_TABLE3_COLUMNS", "PAPER_TABLE4", "PAPER_TABLE5",
    "PAPER_ROWS_AVG", "PAPER_TABLE8", "PAPER_SETTINGS", "PAPER_BEST", "PAPER_MEAN", "CATEGORY_COLUMNS",
    "MELANOMA_COLUMNS", "paper_avg_auc_check",
    "table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8", "table9", "table10",
    "headline_gaps", "clinic_is_derm_cases",
    "variants_table", "claims", "block_costs", "weight_surface", "attention_example", "settings_table",
    "branch_table", "tradeoff", "example_cases", "framework_shapes", "attention_logits_at_init", "augmentation_text",
    "DISPLAY_SIZE", "compare", "claims_table", "CLAIMS", "CLOSE_TOLERANCE", "MASS_SHARE", "attention_spread",
    "positions_holding",
    "plot_pairs", "plot_params", "plot_attention", "plot_weight_surface", "plot_history", "plot_claims",
    "plot_tradeoff", "plot_framework", "plot_attention_block", "plot_saturation",
    "GLANCE_TABLES", "glance_frame", "glance_points", "AUC_CATEGORIES", "MELANOMA_CATEGORIES",
    "MedlibError", "load_weights", "fit",
]
