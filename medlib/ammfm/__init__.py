"""Paper B: asymmetric multi-modal fusion for multi-label skin lesion classification (Tang & Lasser 2024).

Modules: backbones (Sec. 3.1), attention (AAB/BAB, Sec. 3.2), model (Fig. 2, with the heads),
loss (Eq. 2-3), weight_search (Eq. 4), tta (Sec. 4.1), metrics (Sec. 4.2), params (Tables 5-10).
"""

from __future__ import annotations

import importlib

# Names resolve lazily (PEP 562): `medlib --help` imports this package and should not pay for torch at start-up.
_EXPORTS = {
    "attention": ("AsymmetricAttentionBlock", "BidirectionalAttentionBlock"),
    "backbones": ("Backbone", "WEIGHTS", "create_backbone", "list_backbones", "register_backbone", "weights_tag"),
    "errors": ("ConfigError",),
    "loss": ("ammfm_loss", "branch_loss"),
    "metrics": ("auc_table", "evaluate", "melanoma_table", "summarize_runs"),
    "model": ("BRANCHES", "DEFAULT_STAGES", "MultiModalNet", "MultiTaskHead", "SingleModalNet", "create_model"),
    "params": ("count_parameters", "param_table"),
    "tasks": ("AUC_CATEGORIES", "MELANOMA_CATEGORIES", "NUM_CLASSES", "TASK_CLASSES", "TASKS"),
    "tta": ("TTA_VIEWS", "predict", "tta_predict"),
    "weight_search": ("fuse", "fused_probabilities", "mean_task_accuracy", "search_weights"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
