"""Paper A's experiments (Tian et al. 2024, §4): the paper's tables (``paper``), runs and their batches
(``runs``, ``batches``), BN restoration (``restore``), our tables (``tables``),
the analyses (``analysis``), the pages' sentences (``claims``) and figures (``plots``)."""

from medlib.experiments.paper_a import claims
from medlib.experiments.paper_a.analysis import (BN_VARIANTS, bn_ablation, data_vectors, lambda_sweep,
                                                 layer_cosines, pairwise_cosines, sketch_coordinates)
from medlib.experiments.paper_a.paper import (COLUMNS, MERGED, OPEN_CHOICES, PAPER_SETTINGS, PAPER_TABLES,
                                              PAPER_TEST_SIZES, implied_test_size, paper_table, settings_table,
                                              theta_pre_source)
from medlib.experiments.paper_a.plots import (cosine_heatmap, lambda_sweep_plot, layer_cosines_plot, learning_curves,
                                              method_sketch)
from medlib.experiments.paper_a.restore import averaged_stats_kept, restore_on_parts
from medlib.experiments.paper_a.batches import AUGMENTATION, AUGMENTATION_ID, DeviceBatches
from medlib.experiments.paper_a.runs import (SPLITS, Trained, artifact_key, model_path, paper_sites,
                                             pretrained_classifier, split_sites, train_sites)
from medlib.experiments.paper_a.tables import TableResult, paper_comparison, run_table, side_by_side, table

__all__ = [
    "claims",
    "COLUMNS", "MERGED", "PAPER_TABLES", "PAPER_TEST_SIZES", "paper_table", "implied_test_size",
    "PAPER_SETTINGS", "OPEN_CHOICES", "settings_table",
    "AUGMENTATION", "AUGMENTATION_ID", "DeviceBatches",
    "SPLITS", "model_path", "Trained", "paper_sites", "split_sites", "pretrained_classifier", "theta_pre_source",
    "artifact_key", "train_sites", "restore_on_parts", "averaged_stats_kept",
    "table", "TableResult", "run_table", "side_by_side", "paper_comparison",
    "data_vectors", "pairwise_cosines", "layer_cosines", "lambda_sweep", "BN_VARIANTS", "bn_ablation",
    "sketch_coordinates", "learning_curves", "cosine_heatmap", "layer_cosines_plot", "lambda_sweep_plot",
    "method_sketch",
]
