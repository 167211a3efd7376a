"""What a training run is asked to do (:class:`TrainConfig`) and what it did (:class:`History`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from medlib.errors import MedlibError

__all__ = ["TrainConfig", "History"]

# settings that change neither the weights nor the order of the work: a resume may change them
_NOT_FINGERPRINTED = ("device", "log_every", "max_nonfinite_steps", "eval_every", "compile")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (Paper A Table 4: Adam, lr 1e-5, 64 epochs, bs 32)."""

    lr: float
    epochs: int
    batch_size: int = 32  # for loaders built by make_loader; fit uses the loader it is given
    weight_decay: float = 0.0
    class_weights: Tensor | None = None  # for the default loss; see class_weights_from_labels
    seed: int = 0
    device: str | torch.device = "auto"
    amp: bool | None = None  # mixed precision; None: on CUDA only
    amp_dtype: str | None = None  # None: bfloat16 where supported, else float16 (medlib.train.precision)
    channels_last: bool | None = None  # None: on CUDA only
    scheduler: str | None = None  # None or "cosine" (per epoch, one cosine over all epochs, SWA ones included)
    swa_start: int | None = None  # 0-based epoch from which SWA averages; None: no SWA
    swa_lr: float | None = None  # SWALR target lr from swa_start; None: keep the schedule
    max_steps: int | None = None  # at most this many batches per epoch and per validation (dry runs)
    log_every: int = 1  # print a line every this many epochs (0: silent)
    max_nonfinite_steps: int = 25  # non-finite steps are skipped; this many in a row mean divergence
    eval_every: int = 1  # validate every this many epochs, and after the last one
    compile: str = "auto"  # "auto", "off" or a torch.compile backend: medlib.train.loop.compiled_for_training

    def __post_init__(self):
        if self.epochs < 0 or self.lr <= 0 or not math.isfinite(self.lr):
            raise MedlibError(f"TrainConfig needs epochs >= 0 and a positive finite lr, got {self.epochs}, {self.lr}")
        if self.scheduler not in (None, "cosine"):
            raise MedlibError(f"unknown scheduler {self.scheduler!r}; expected None or 'cosine'")
        if self.swa_start is not None and not 0 <= self.swa_start < max(self.epochs, 1):
            raise MedlibError(f"swa_start={self.swa_start} must be an epoch index in [0, {self.epochs})")
        if self.amp_dtype not in (None, "float16", "bfloat16"):
            raise MedlibError(f"amp_dtype={self.amp_dtype!r}: expected None, 'float16' or 'bfloat16'")
        if self.max_steps is not None and self.max_steps < 1:
            raise MedlibError(f"max_steps={self.max_steps}: expected None (no cap) or a positive number of batches")
        if self.eval_every < 1:
            raise MedlibError(f"eval_every={self.eval_every} must be at least 1 (epochs between validations)")
        if self.max_nonfinite_steps < 1:
            raise MedlibError(f"max_nonfinite_steps={self.max_nonfinite_steps} must be at least 1")

    def fingerprint(self) -> dict:
        """What must not change between a run and its resume."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in _NOT_FINGERPRINTED:
                continue
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, Tensor) else v
        return out


@dataclass
class History:
    """Per-epoch records of :func:`~medlib.train.fit` (``skipped_steps``: steps with a non-finite loss or
    gradients) and, with SWA, the averaged model with its BN statistics recomputed."""

    records: list[dict] = field(default_factory=list)
    swa_model: nn.Module | None = None
    resumed_from: int | None = None  # number of epochs already done when a resumed run started
    checkpoint: Path | None = None  # the file resumed from, if any
    checkpoints_written: int = 0  # by this call of fit
    checkpoint_bytes: int = 0  # bytes written by this call of fit

    def evaluated_epochs(self) -> list[int]:
        """The (1-based) epochs with validation numbers: the points of a validation curve."""
        return [r["epoch"] for r in self.records if "val_loss" in r]

    def last(self) -> dict:
        return self.records[-1] if self.records else {}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.records)
