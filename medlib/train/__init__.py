"""One trainer for both papers: fine-tuning (Paper A §3.1, Table 4) and AMMFM training (Paper B).

:func:`fit` is plain PyTorch, in named parts a reader can follow:

- :class:`TrainingState` (:mod:`~medlib.train.state`): model, Adam, cosine schedule, SWALR,
  gradient scaler, SWA model, epoch and history, with ``save``/``load`` — the checkpoint,
  written on a time cadence (default every 10 minutes) and after the last epoch;
- :func:`train_one_epoch` (:mod:`~medlib.train.loop`): class-weighted cross-entropy by
  default (or any ``loss_fn(output, targets)``), mixed precision (:mod:`~medlib.train.precision`:
  bfloat16 where the GPU has it, float16 with a gradient scaler on a T4), channels-last on
  CUDA, non-finite steps skipped rather than fatal;
- :func:`finish_swa`: the stochastic weight average (:mod:`torch.optim.swa_utils`) with its
  BatchNorm statistics recomputed.

A run killed at any moment and restarted with ``resume=True`` ends with weights bitwise
identical to an uninterrupted run (on CPU): the randomness of every epoch is a pure function
of ``(seed, epoch)`` (:func:`~medlib.train.state.seed_epoch`). :func:`predict` and
:func:`evaluate` give the papers' metrics. Every function that takes a device moves the model
there; ``max_steps`` caps the batches per epoch and per evaluation (dry runs).
"""

from medlib.train.batches import class_weights_from_labels, default_batch_to_device, make_loader
from medlib.train.config import History, TrainConfig
from medlib.train.loop import finish_swa, fit, train_one_epoch
from medlib.train.metrics import classification_metrics, evaluate, predict
from medlib.train.precision import Precision, choose_precision
from medlib.train.state import CheckpointCadence, TrainingState

__all__ = [
    "TrainConfig",
    "History",
    "TrainingState",
    "CheckpointCadence",
    "Precision",
    "choose_precision",
    "fit",
    "train_one_epoch",
    "finish_swa",
    "evaluate",
    "predict",
    "classification_metrics",
    "class_weights_from_labels",
    "make_loader",
    "default_batch_to_device",
]
