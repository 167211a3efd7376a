"""Paper B: asymmetric multi-modal fusion for multi-label skin lesion classification (AMMFM).

Tang & Lasser (2024). One module per concern:

* :mod:`~medlib.ammfm.backbones` — backbone registry (MobileNetV3-S, Swin V2-T, ResNet-50,
  ConvNeXt-T; full and tiny), Sec. 3.1
* :mod:`~medlib.ammfm.attention` — asymmetric (AAB) and bidirectional (BAB) attention, Sec. 3.2
* :mod:`~medlib.ammfm.heads` — the FusionM4Net multi-task head
* :mod:`~medlib.ammfm.model` — :class:`MultiModalNet` (SFF/AFF × concat/AAB/BAB),
  :class:`SingleModalNet`, :func:`create_model`, Fig. 2
* :mod:`~medlib.ammfm.loss` — Eq. 2-3
* :mod:`~medlib.ammfm.weight_search` — weighted averaging and weight search, Eq. 4
* :mod:`~medlib.ammfm.tta` — six-view test-time augmentation, Sec. 4.1
* :mod:`~medlib.ammfm.metrics` — AUC / ACC / PRE / SEN / SPE, Sec. 4.2
* :mod:`~medlib.ammfm.params` — parameter counts of Tables 5-10
"""

from __future__ import annotations

import importlib

# Names resolve lazily (PEP 562): `medlib ammfm ...` and `medlib --help` import this package
# to register sub-commands and should not pay for torch/torchvision/sklearn at start-up.
_EXPORTS = {
    "attention": ("AsymmetricAttentionBlock", "BidirectionalAttentionBlock"),
    "backbones": ("Backbone", "WEIGHTS", "create_backbone", "list_backbones", "register_backbone", "weights_tag"),
    "errors": ("ConfigError",),
    "heads": ("MultiTaskHead",),
    "loss": ("ammfm_loss", "branch_loss"),
    "metrics": ("auc_table", "evaluate", "melanoma_table", "summarize_runs"),
    "model": ("BRANCHES", "DEFAULT_STAGES", "MultiModalNet", "SingleModalNet", "create_model"),
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
