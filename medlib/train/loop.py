"""The training loop: :func:`fit` = resume, then :func:`train_one_epoch` per epoch, then :func:`finish_swa`."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn

from medlib.errors import MedlibError
from medlib.train.batches import as_device, batch_size, capped, default_batch_to_device, forward
from medlib.train.config import History, TrainConfig
from medlib.train.metrics import classification_metrics
from medlib.train.precision import Precision, choose_precision
from medlib.train.state import DEFAULT_CHECKPOINT_EVERY_S, CheckpointCadence, TrainingState, seed_epoch

__all__ = ["fit", "train_one_epoch", "finish_swa", "weighted_cross_entropy"]


def fit(
    model: nn.Module,
    train_loader: Iterable,
    cfg: TrainConfig,
    *,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    val_loader: Iterable | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float | None = None,
    batch_to_device: Callable | None = None,
    on_epoch_end: Callable[[int, nn.Module, History], None] | None = None,
) -> History:
    """Train ``model`` in place (on ``cfg.device``) for ``cfg.epochs`` epochs; return the :class:`History`.

    ``loss_fn(output, targets)`` defaults to cross-entropy with ``cfg.class_weights``.
    ``batch_to_device(batch, device) -> (inputs, targets)`` defaults to
    :func:`default_batch_to_device`. With ``checkpoint_path`` the state is saved every
    ``checkpoint_every_s`` seconds (0: after every epoch; default ``$MEDLIB_CHECKPOINT_EVERY_S``,
    else 600 — a cluster of preemptible nodes may want less) and after the last epoch, and
    ``resume=True`` continues from it, bitwise as if never interrupted (on CPU; CUDA kernels
    are not bitwise deterministic). ``on_epoch_end(epoch, model, history)`` runs after the
    epoch's checkpoint, if one was due (``epoch`` is 0-based). With ``cfg.swa_start`` the SWA
    average is updated after every epoch from ``swa_start`` on and returned, BN statistics
    recomputed, as ``history.swa_model``.
    """
    device = as_device(cfg.device)
    precision = choose_precision(device, cfg.amp, cfg.amp_dtype)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    to_device = batch_to_device or (lambda b, d: default_batch_to_device(b, d, channels_last))
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = loss_fn or weighted_cross_entropy(cfg.class_weights, device)

    state = TrainingState.create(model, cfg, precision)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    if resume and ckpt is not None:
        _resume(state, ckpt, device)
    if checkpoint_every_s is None:
        checkpoint_every_s = float(os.environ.get("MEDLIB_CHECKPOINT_EVERY_S", DEFAULT_CHECKPOINT_EVERY_S))
    cadence = CheckpointCadence(checkpoint_every_s)
    history = state.history

    while state.epoch < cfg.epochs:
        epoch = state.epoch
        seed_epoch(cfg.seed, epoch, train_loader)
        started = time.perf_counter()
        lr = state.optimizer.param_groups[0]["lr"]
        record = {"epoch": epoch + 1, **train_one_epoch(state, train_loader, loss_fn, device=device,
                                                         precision=precision, to_device=to_device), "lr": lr}
        if state.swa_model is not None and epoch >= cfg.swa_start:
            state.swa_model.update_parameters(model)
        state.epoch += 1
        state.step_schedules()
        if val_loader is not None:
            record.update(_validate(model, val_loader, device, to_device, loss_fn, precision, cfg.max_steps))
        record["seconds"] = time.perf_counter() - started
        history.records.append(record)
        if ckpt is not None and cadence.due(state.epoch, cfg.epochs):
            history.checkpoint_bytes += state.save(ckpt)
            history.checkpoints_written += 1
            cadence.written()
        if cfg.log_every and (state.epoch % cfg.log_every == 0 or state.epoch == cfg.epochs):
            print(_progress_line(record, cfg.epochs), flush=True)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, history)

    if state.swa_model is not None:
        finish_swa(state, train_loader, device=device, to_device=to_device)
    return history


def weighted_cross_entropy(class_weights: Tensor | None, device) -> Callable[[Tensor, Tensor], Tensor]:
    """Paper A's loss (Table 4): cross-entropy with per-class weights (None: unweighted)."""
    weight = class_weights.to(device=device, dtype=torch.float32) if class_weights is not None else None

    def loss_fn(out, y):
        if y is None:
            raise MedlibError("the default cross-entropy loss needs labels: the loader must yield (x, y)")
        return F.cross_entropy(out.float(), y, weight=weight)

    return loss_fn


def _resume(state: TrainingState, ckpt: Path, device: torch.device) -> None:
    epochs = state.cfg.epochs
    if not ckpt.exists():
        if state.cfg.log_every:
            print(f"no checkpoint at {ckpt}: training from scratch", flush=True)
        return
    state.load(ckpt, device)
    left = f"{epochs - state.epoch} left" if state.epoch < epochs else "nothing left to train"
    # always said: a resumed run must never pass for a fresh one
    print(f"resuming from checkpoint {ckpt} after epoch {state.epoch}/{epochs} ({left})", flush=True)


def train_one_epoch(state: TrainingState, loader: Iterable, loss_fn, *, device: torch.device,
                    precision: Precision, to_device=default_batch_to_device) -> dict:
    """One pass over ``loader`` (at most ``cfg.max_steps`` batches); the epoch's record.

    A batch whose loss is not finite is skipped (no step), and so, in float16, is one whose
    gradients overflow (the gradient scaler's rule): ``train_loss`` averages the batches with a
    finite loss and ``skipped_steps`` counts the rest. Training has diverged — and stops with
    an explanation — when ``cfg.max_nonfinite_steps`` steps in a row were skipped, when no
    batch of the epoch had a finite loss, or when a weight became non-finite.
    """
    cfg, model, optimizer, scaler = state.cfg, state.model, state.optimizer, state.scaler
    model.train()
    # running sums stay on the device; the one host synchronisation per step is the finiteness test
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, counted, steps, skipped = 0, 0, 0, 0
    for batch in capped(loader, cfg.max_steps):
        steps += 1
        x, y = to_device(batch, device)
        with precision.autocast():
            out = forward(model, x)
            loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss.detach()).all())
        stepped = False
        if finite:
            scale = scaler.get_scale() if scaler.is_enabled() else None
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            stepped = scale is None or scaler.get_scale() >= scale  # the scaler lowers its scale when it skips
            n = batch_size(y, x)
            total_loss += loss.detach().double() * n
            seen += n
            hits = _correct(out, y)
            if hits is not None:
                correct += hits
                counted += y.numel()
        if stepped:
            state.skipped_in_a_row = 0
        else:
            skipped += 1
            state.skipped_in_a_row += 1
            if state.skipped_in_a_row >= cfg.max_nonfinite_steps:
                raise _diverged(state, f"{state.skipped_in_a_row} steps in a row had a non-finite loss or gradients")
    if steps == 0:
        raise MedlibError("the training loader yielded no batches")
    if seen == 0:
        raise _diverged(state, f"the loss was not finite in any of the epoch's {steps} batches")
    if not _finite_weights(model):
        raise _diverged(state, "a weight became non-finite")
    return {"train_loss": float(total_loss) / seen,
            "train_accuracy": int(correct) / counted if counted else math.nan,
            "skipped_steps": skipped}


def finish_swa(state: TrainingState, loader: Iterable, *, device: torch.device, to_device=default_batch_to_device) -> nn.Module:
    """The SWA model with BatchNorm statistics of its own averaged weights (``update_bn``).

    One forward pass over the training data (at most ``cfg.max_steps`` batches), in the same
    seeded order every time, so a resumed run recomputes them bitwise. Sets and returns
    ``history.swa_model``.
    """
    seed_epoch(state.cfg.seed, state.cfg.epochs, loader)
    update_bn(_Inputs(loader, to_device, device, state.cfg.max_steps), _Splat(state.swa_model.module))
    state.history.swa_model = state.swa_model.module
    return state.history.swa_model


def _diverged(state: TrainingState, why: str) -> MedlibError:
    return MedlibError(
        f"epoch {state.epoch + 1}: training diverged ({why}). Lower the learning rate "
        f"(now {state.optimizer.param_groups[0]['lr']:g}) or check the inputs for NaN."
    )


def _finite_weights(model: nn.Module) -> bool:
    params = [p.detach() for p in model.parameters() if p.is_floating_point()]
    return not params or bool(torch.stack([torch.isfinite(p).all() for p in params]).all())


class _Splat(nn.Module):
    """Lets ``update_bn`` (which calls ``model(batch[0])``) drive a multi-input model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return forward(self.model, x)


class _Inputs:
    """Yields ``[inputs]`` of each batch so that ``update_bn``'s ``batch[0]`` is the whole input."""

    def __init__(self, loader, to_device, device, max_steps):
        self.loader, self.to_device, self.device, self.max_steps = loader, to_device, device, max_steps

    def __iter__(self):
        for batch in capped(self.loader, self.max_steps):
            yield [self.to_device(batch, self.device)[0]]


def _single_label(out, y) -> bool:
    return (isinstance(out, Tensor) and isinstance(y, Tensor) and out.ndim == 2 and y.ndim == 1
            and not y.is_floating_point())


def _correct(out, y) -> Tensor | None:
    """Number of correct argmax predictions (a device tensor), or None for other outputs."""
    return (out.detach().argmax(1) == y).sum() if _single_label(out, y) else None


def _validate(model, loader, device, to_device, loss_fn, precision: Precision, max_steps) -> dict:
    model.eval()
    total, seen, probs, labels, single = 0.0, 0, [], [], True
    with torch.no_grad(), precision.autocast():
        for batch in capped(loader, max_steps):
            x, y = to_device(batch, device)
            out = forward(model, x)
            n = batch_size(y, x)
            if y is not None:
                total += float(loss_fn(out, y)) * n
                seen += n
            if single and _single_label(out, y):
                probs.append(out.float().softmax(1).cpu())
                labels.append(y.cpu())
            else:
                single = False
    model.train()
    result = {"val_loss": total / seen if seen else math.nan}
    if single and probs:
        p, y = torch.cat(probs).numpy(), torch.cat(labels).numpy()
        metrics = classification_metrics(p, y, p.shape[1])
        result.update({f"val_{k}": v for k, v in metrics.items() if k != "n"})
    return result


def _progress_line(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch']:>3d}/{epochs}", f"loss {record['train_loss']:.4f}"]
    if not math.isnan(record["train_accuracy"]):
        parts.append(f"acc {record['train_accuracy']:.3f}")
    for key, short in (("val_loss", "val_loss"), ("val_accuracy", "val_acc"),
                       ("val_balanced_accuracy", "val_bacc"), ("val_macro_f1", "val_f1"), ("val_auroc", "val_auroc")):
        if key in record and not math.isnan(record[key]):
            parts.append(f"{short} {record[key]:.3f}")
    parts.append(f"lr {record['lr']:.2e}")
    if record.get("skipped_steps"):
        parts.append(f"skipped {record['skipped_steps']} steps")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)
