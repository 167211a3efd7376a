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

__all__ = ["fit", "train_one_epoch", "finish_swa", "weighted_cross_entropy", "tune_for", "compiled_for_training"]


def fit(model: nn.Module, train_loader: Iterable, cfg: TrainConfig, *,
        loss_fn: Callable[[Any, Any], Tensor] | None = None, val_loader: Iterable | None = None,
        checkpoint_path: str | Path | None = None, resume: bool = False, checkpoint_every_s: float | None = None,
        batch_to_device: Callable | None = None, val_batch_to_device: Callable | None = None,
        on_epoch_end: Callable[[int, nn.Module, History], None] | None = None, binding: dict | None = None) -> History:
    """Train ``model`` in place (on ``cfg.device``) for ``cfg.epochs`` epochs; return the :class:`History`.

    ``loss_fn(output, targets)`` defaults to cross-entropy with ``cfg.class_weights``;
    ``batch_to_device(batch, device) -> (inputs, targets)`` to :func:`default_batch_to_device`
    (``val_batch_to_device``, for validation: to ``batch_to_device``). Validation runs every
    ``cfg.eval_every`` epochs and after the last. With ``checkpoint_path`` the state is saved every
    ``checkpoint_every_s`` seconds (0: every epoch; default ``$MEDLIB_CHECKPOINT_EVERY_S``, else 600) and
    after the last epoch; ``resume=True`` continues from it, bitwise on CPU; ``binding`` (JSON-able: data,
    site, θ_pre) makes a resume refuse another run's checkpoint. ``on_epoch_end(epoch, model, history)``
    runs after each (0-based) epoch. With ``cfg.swa_start``, ``history.swa_model`` is the SWA average.
    """
    device = as_device(cfg.device)
    precision = choose_precision(device, cfg.amp, cfg.amp_dtype)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    to_device = batch_to_device or (lambda b, d: default_batch_to_device(b, d, channels_last))
    val_to_device = val_batch_to_device or to_device
    tune_for(device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = compiled_for_training(model, device, cfg.compile)
    loss_fn = loss_fn or weighted_cross_entropy(cfg.class_weights, device)

    state = TrainingState.create(model, cfg, precision, binding)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    if resume and ckpt is not None:
        state.resume(ckpt)
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
                                                         precision=precision, to_device=to_device, net=net), "lr": lr}
        if state.swa_model is not None and epoch >= cfg.swa_start:
            state.swa_model.update_parameters(model)
        state.epoch += 1
        state.step_schedules()
        if val_loader is not None and (state.epoch % cfg.eval_every == 0 or state.epoch == cfg.epochs):
            record.update(_validate(model, val_loader, device, val_to_device, loss_fn, precision, cfg.max_steps))
        record["seconds"] = time.perf_counter() - started
        history.records.append(record)
        if ckpt is not None and cadence.due(state.epoch, cfg.epochs):
            state.save(ckpt)
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


def tune_for(device: torch.device) -> None:
    """cuDNN autotuning on CUDA (fixed shapes; bitwise reproducibility is promised on the CPU only)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compiled_for_training(model: nn.Module, device: torch.device, choice: str = "auto") -> nn.Module:
    """What the training steps call: ``model``, or compiled (sharing its parameters) where that pays.

    ``choice`` (:attr:`TrainConfig.compile`): ``"auto"`` follows ``$MEDLIB_COMPILE``, else CUDA graphs on
    CUDA (``mode="reduce-overhead"``: one launch replays a step's hundreds of kernels) and eager elsewhere
    (on a CPU compiling took minutes and ran slower); ``"off"``; or a ``torch.compile`` backend.
    """
    if choice == "auto":
        choice = os.environ.get("MEDLIB_COMPILE", "").strip() or "auto"
    if choice == "off" or (choice == "auto" and device.type != "cuda"):
        return model
    return torch.compile(model, mode="reduce-overhead") if choice == "auto" else torch.compile(model, backend=choice)


def train_one_epoch(state: TrainingState, loader: Iterable, loss_fn, *, device: torch.device,
                    precision: Precision, to_device=default_batch_to_device, net: nn.Module | None = None) -> dict:
    """One pass over ``loader`` (at most ``cfg.max_steps`` batches); the epoch's record.

    A batch whose loss or gradients are not finite is skipped (``skipped_steps``); training has diverged
    after ``cfg.max_nonfinite_steps`` skips in a row, an epoch without a finite loss, or a non-finite
    weight. The steps read nothing back to the host: the counters stay on the device and are read every
    :data:`READ_EVERY` steps and at the end. ``net`` is what the steps call (``state.model`` compiled).
    """
    cfg, model, optimizer, scaler = state.cfg, state.model, state.optimizer, state.scaler
    net = model if net is None else net
    model.train()
    # loss·n and n of the batches with a finite loss, correct predictions and labels counted,
    # skipped steps, the current run of skipped steps and the longest run since the last read
    sums = torch.zeros(4, device=device, dtype=torch.float64)
    skips = torch.tensor([0, state.skipped_in_a_row, state.skipped_in_a_row], device=device)
    steps = 0
    for batch in capped(loader, cfg.max_steps):
        if steps and steps % READ_EVERY == 0:  # before the step: an epoch's last read is the one below
            skips = _read_counters(state, skips)[2]
        steps += 1
        x, y = to_device(batch, device)
        with precision.autocast():
            out = forward(net, x)
            loss = loss_fn(out, y)
        finite_loss, stepped = _guarded_step(optimizer, scaler, loss)
        n = batch_size(y, x)
        hits, counted = _correct(out, y)
        ok = finite_loss.double()  # Python numbers enter as kernel arguments: no copy to the device
        finite_sum = torch.where(finite_loss, loss.detach().double(), 0.0) * n
        sums += torch.stack([finite_sum, ok * n, ok * hits, ok * counted])
        in_a_row = torch.where(stepped, 0, skips[1] + 1)
        skips = torch.stack([skips[0] + (~stepped).long(), in_a_row, torch.maximum(skips[2], in_a_row)])
    if steps == 0:
        raise MedlibError("the training loader yielded no batches")
    # the epoch's one read: running sums, skip counters and the finiteness of the weights together
    (loss_sum, seen, correct, counted), skipped, _ = _read_counters(state, skips, sums, _finite_weights(model))
    if seen == 0:
        raise _diverged(state, f"the loss was not finite in any of the epoch's {steps} batches")
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / counted if counted else math.nan,
            "skipped_steps": skipped}


# steps between two host reads (syncs) of an epoch's counters: a run of skips is noticed up to this
# many steps late, harmless since a skipped step changes no weight
READ_EVERY = 100


def _read_counters(state: TrainingState, skips: Tensor, sums: Tensor | None = None,
                   weights_finite: Tensor | None = None) -> tuple[list[float], int, Tensor]:
    """One host read of the counters (raises if training diverged): sums, steps skipped, skips reset."""
    parts = [skips.double()] + ([sums] if sums is not None else []) + (
        [weights_finite.double().view(1)] if weights_finite is not None else [])
    values = torch.cat(parts).tolist()
    total, in_a_row, longest = (int(v) for v in values[:3])
    state.skipped_in_a_row = in_a_row
    if longest >= state.cfg.max_nonfinite_steps:
        raise _diverged(state, f"{longest} steps in a row had a non-finite loss or gradients")
    if weights_finite is not None and not values[-1]:
        raise _diverged(state, "a weight became non-finite")
    return values[3:7], total, torch.stack([skips[0], skips[1], skips[1]])


def _guarded_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  loss: Tensor) -> tuple[Tensor, Tensor]:
    """Backward and step, skipped by the gradient scaler where the loss or gradients are not finite.

    Returns two device booleans: the loss was finite; the step was taken (Adam's step counter moved).
    """
    optimizer.zero_grad(set_to_none=True)
    finite_loss = torch.isfinite(loss.detach())
    scaler.scale(loss).backward()
    p = next(p for group in optimizer.param_groups for p in group["params"] if p.grad is not None)
    before = optimizer.state.get(p, {}).get("step", 0)  # a tensor (on the device when fused), 0 at first
    before = before.clone() if isinstance(before, Tensor) else before
    scaler.step(optimizer)
    scaler.update()
    return finite_loss, finite_loss & (optimizer.state.get(p, {}).get("step", 0) > before)


def finish_swa(state: TrainingState, loader: Iterable, *, device: torch.device,
               to_device=default_batch_to_device) -> nn.Module:
    """``history.swa_model``: the SWA model, BN statistics recomputed (``update_bn``) in a seeded order."""
    seed_epoch(state.cfg.seed, state.cfg.epochs, loader)
    # update_bn calls model(batch[0]): each batch's whole input, wrapped
    inputs = ([to_device(batch, device)[0]] for batch in capped(loader, state.cfg.max_steps))
    update_bn(inputs, _Splat(state.swa_model.module))
    state.history.swa_model = state.swa_model.module
    return state.history.swa_model


def _diverged(state: TrainingState, why: str) -> MedlibError:
    return MedlibError(f"epoch {state.epoch + 1}: training diverged ({why}). Lower the learning rate "
                       f"(now {state.optimizer.param_groups[0]['lr']:g}) or check the inputs for NaN.")


def _finite_weights(model: nn.Module) -> Tensor:
    """Whether every floating-point weight is finite, as a device boolean."""
    params = [p.detach() for p in model.parameters() if p.is_floating_point()]
    if not params:
        return torch.ones((), dtype=torch.bool)
    return torch.isfinite(torch.nn.utils.get_total_norm(params, norm_type=math.inf))


class _Splat(nn.Module):
    """Lets ``update_bn`` drive a multi-input model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return forward(self.model, x)


def _single_label(out, y) -> bool:
    return (isinstance(out, Tensor) and isinstance(y, Tensor) and out.ndim == 2 and y.ndim == 1
            and not y.is_floating_point())


def _correct(out, y) -> tuple[Tensor | int, int]:
    """Correct argmax predictions (a device tensor) and labels counted; (0, 0) for other outputs."""
    return ((out.detach().argmax(1) == y).sum(), y.numel()) if _single_label(out, y) else (0, 0)


def _validate(model, loader, device, to_device, loss_fn, precision: Precision, max_steps) -> dict:
    """Validation loss and metrics; the loss and probabilities stay on the device until the one read at the end."""
    model.eval()
    total, seen, probs, labels, single = torch.zeros((), device=device, dtype=torch.float64), 0, [], [], True
    with torch.no_grad(), precision.autocast():
        for batch in capped(loader, max_steps):
            x, y = to_device(batch, device)
            out = forward(model, x)
            n = batch_size(y, x)
            if y is not None:
                total += loss_fn(out, y).detach().double() * n
                seen += n
            if single and _single_label(out, y):
                probs.append(out.float().softmax(1))
                labels.append(y)
            else:
                single = False
    model.train()
    result = {"val_loss": total.item() / seen if seen else math.nan}
    if single and probs:
        p, y = torch.cat(probs).cpu().numpy(), torch.cat(labels).cpu().numpy()
        metrics = classification_metrics(p, y, p.shape[1])
        result.update({f"val_{k}": v for k, v in metrics.items() if k != "n"})
    return result


def _progress_line(record: dict, epochs: int) -> str:
    shown = {"train_accuracy": "acc", "val_loss": "val_loss", "val_accuracy": "val_acc",
             "val_balanced_accuracy": "val_bacc", "val_macro_f1": "val_f1", "val_auroc": "val_auroc"}
    parts = [f"epoch {record['epoch']:>3d}/{epochs}", f"loss {record['train_loss']:.4f}"]
    parts += [f"{short} {record[key]:.3f}" for key, short in shown.items()
              if key in record and not math.isnan(record[key])]
    parts.append(f"lr {record['lr']:.2e}")
    if record.get("skipped_steps"):
        parts.append(f"skipped {record['skipped_steps']} steps")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)
