"""One trainer for both papers (Paper A §3.1, Table 4; Paper B): :func:`fit` runs :func:`train_one_epoch` per
epoch on a :class:`TrainingState` (checkpointed, resumable bitwise on CPU), then :func:`finish_swa`;
:func:`predict` and :func:`evaluate` give the papers' metrics."""

from medlib.train.batches import class_weights_from_labels, default_batch_to_device, make_loader
from medlib.train.config import History, TrainConfig
from medlib.train.loop import finish_swa, fit, train_one_epoch
from medlib.train.metrics import classification_metrics, evaluate, predict
from medlib.train.precision import Precision, choose_precision
from medlib.train.state import CheckpointCadence, TrainingState

__all__ = ["TrainConfig", "History", "TrainingState", "CheckpointCadence", "Precision", "choose_precision", "fit",
           "train_one_epoch", "finish_swa", "evaluate", "predict", "classification_metrics",
           "class_weights_from_labels", "make_loader", "default_batch_to_device"]
