"""One trainer for both papers: fine-tuning (Paper A §3.1, Table 4) and AMMFM training (Paper B).

``fit`` is plain PyTorch: Adam, an optional cosine schedule, class-weighted cross-entropy by
default (or any ``loss_fn(output, targets)``), mixed precision and channels-last on CUDA,
stochastic weight averaging with :mod:`torch.optim.swa_utils`, one text line per epoch.

Checkpoints and exact resume
    With ``checkpoint_path`` a checkpoint is written after *every* epoch (atomically: a kill
    while writing leaves the previous one intact). It is the site's own local file — model,
    optimizer, scheduler, grad-scaler, SWA model, RNG states, history — saved with
    ``torch.save`` and read back with ``torch.load(weights_only=True)``. It never leaves the
    site; weights exchanged between sites are safetensors (:mod:`medlib.io`).

    ``resume=True`` continues from it. A run killed at any moment and restarted with the same
    arguments ends with weights bitwise identical to an uninterrupted run (on CPU; CUDA
    kernels are not bitwise deterministic). The key is that the random state of every epoch
    is a pure function of ``(seed, epoch)``: at the start of epoch ``e`` Python, NumPy and torch
    are re-seeded, and so is the loader's own ``generator`` if it has one. Shuffling,
    augmentation, dropout and worker seeds of epoch ``e`` are therefore the same whether or
    not the process died in epoch ``e - 1``. (Use ``persistent_workers=False``, the default.)
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from medlib.errors import MedlibError
from medlib.io import atomic_path
from medlib.runtime import select_device

__all__ = [
    "TrainConfig",
    "History",
    "fit",
    "evaluate",
    "predict",
    "classification_metrics",
    "class_weights_from_labels",
    "make_loader",
    "default_batch_to_device",
]

_CHECKPOINT_FORMAT = "medlib-train-checkpoint/1"


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
    amp: bool | None = None  # None: on CUDA only
    channels_last: bool | None = None  # None: on CUDA only
    scheduler: str | None = None  # None or "cosine" (per epoch, over the pre-SWA epochs)
    swa_start: int | None = None  # 0-based epoch from which SWA averages; None: no SWA
    swa_lr: float | None = None  # SWALR target lr from swa_start; None: keep the schedule
    log_every: int = 1  # print a line every this many epochs (0: silent)

    def __post_init__(self):
        if self.epochs < 0 or self.lr <= 0 or not math.isfinite(self.lr):
            raise MedlibError(f"TrainConfig needs epochs >= 0 and a positive finite lr, got {self.epochs}, {self.lr}")
        if self.scheduler not in (None, "cosine"):
            raise MedlibError(f"unknown scheduler {self.scheduler!r}; expected None or 'cosine'")
        if self.swa_start is not None and not 0 <= self.swa_start < max(self.epochs, 1):
            raise MedlibError(f"swa_start={self.swa_start} must be an epoch index in [0, {self.epochs})")

    def fingerprint(self) -> dict:
        """What must not change between a run and its resume."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("device", "log_every"):
                continue
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, Tensor) else v
        return out


@dataclass
class History:
    """Per-epoch records of :func:`fit` and, with SWA, the averaged model.

    ``swa_model`` is a plain module holding the SWA weights with BN statistics recomputed by
    ``update_bn``; the model passed to ``fit`` keeps the last epoch's weights.
    """

    records: list[dict] = field(default_factory=list)
    swa_model: nn.Module | None = None
    resumed_from: int | None = None  # number of epochs already done when a resumed run started

    def last(self) -> dict:
        return self.records[-1] if self.records else {}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.records)


# --------------------------------------------------------------------------- data helpers


def class_weights_from_labels(labels, n_classes: int) -> Tensor:
    """Inverse-frequency class weights ``w_c = N / (K · n_c)`` (scikit-learn's "balanced").

    ``n_c`` is the count of class c among the N labels and K the number of classes that
    occur, so the weights average to 1 over the samples and every present class carries the
    same total weight N / K. A class absent from ``labels`` gets weight 0 (it never occurs as
    a target, so its weight never enters the loss). Paper A trains with "Weighted Cross
    Entropy Loss" (Table 4); the weights come from each site's own labels. (With
    ``reduction="mean"`` PyTorch divides by the summed weights of the batch's targets, so
    only the *ratios* of the weights change the loss.)
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
    if y.numel() == 0:
        raise MedlibError("class_weights_from_labels needs at least one label")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise MedlibError(f"labels must lie in [0, {n_classes}); found {int(y.min())}..{int(y.max())}")
    counts = torch.bincount(y, minlength=n_classes).double()
    present = int((counts > 0).sum())
    weights = torch.where(counts > 0, y.numel() / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


def make_loader(dataset, batch_size: int, *, shuffle: bool, seed: int = 0, num_workers: int = 0,
                device: str | torch.device = "cpu", drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader with its own seeded generator (re-seeded per epoch by ``fit``), pinned on CUDA."""
    device = torch.device(device) if not isinstance(device, torch.device) else device
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda",
    )


def _to(obj, device, channels_last: bool = False, non_blocking: bool = False):
    if isinstance(obj, Tensor):
        obj = obj.to(device, non_blocking=non_blocking)
        if channels_last and obj.ndim == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device, channels_last, non_blocking) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device, channels_last, non_blocking) for k, v in obj.items()}
    return obj


def default_batch_to_device(batch, device, channels_last: bool = False):
    """``(inputs, targets)`` from a batch ``(x, y)`` (or ``x`` alone, targets ``None``), on ``device``.

    ``x`` may be a tensor or a tuple of tensors (a multi-input model is called as ``model(*x)``);
    ``y`` may be a tensor, a tuple or a dict (whatever ``loss_fn`` expects).
    """
    if isinstance(batch, (list, tuple)):
        if len(batch) != 2:
            raise MedlibError(f"expected batches (inputs, targets); got a {type(batch).__name__} of {len(batch)}")
        x, y = batch
    else:
        x, y = batch, None
    nb = torch.device(device).type == "cuda"
    return _to(x, device, channels_last, nb), _to(y, device, False, nb)


def _forward(model: nn.Module, x):
    return model(*x) if isinstance(x, (list, tuple)) else model(x)


def _loader_generators(loader) -> list[torch.Generator]:
    """Every torch.Generator that decides ``loader``'s order (DataLoader, sampler, chained loaders)."""
    found = []
    for obj in (loader, getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        g = getattr(obj, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    for sub in getattr(loader, "loaders", ()) or ():
        found += [g for g in _loader_generators(sub) if all(g is not h for h in found)]
    return found


def _seed_epoch(seed: int, epoch: int, loader) -> None:
    """Make epoch ``epoch``'s randomness a function of ``(seed, epoch)`` only."""
    s = (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)  # also seeds every CUDA device
    for g in _loader_generators(loader):
        g.manual_seed(s)


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- metrics


def predict(model: nn.Module, loader: Iterable, device=None, *, batch_to_device=None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities ``(N, C)`` and labels ``(N,)`` of a single-output classifier."""
    device = _device_of(model) if device is None else torch.device(device)
    to_device = batch_to_device or default_batch_to_device
    was_training = model.training
    model.eval()
    probs, labels = [], []
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for batch in loader:
            x, y = to_device(batch, device)
            out = _forward(model, x)
            if not isinstance(out, Tensor) or out.ndim != 2:
                raise MedlibError("predict expects a model returning (batch, classes) logits")
            probs.append(out.float().softmax(dim=1).cpu())
            if y is not None:
                labels.append(torch.as_tensor(y).reshape(-1).cpu())
    model.train(was_training)
    p = torch.cat(probs).numpy() if probs else np.zeros((0, 0), dtype=np.float32)
    y = torch.cat(labels).numpy().astype(np.int64) if labels else np.zeros(0, dtype=np.int64)
    return p, y


def classification_metrics(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """Accuracy, balanced accuracy, macro-F1 and one-vs-rest macro AUROC (scikit-learn).

    Classes absent from ``labels`` (a small site or test split) are left out of the balanced
    accuracy, the F1 average (over classes present in labels or predictions) and the AUROC
    (mean of the per-class one-vs-rest AUCs of classes that have positives and negatives);
    with fewer than two such classes the AUROC is NaN.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    labels = np.asarray(labels).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0] or probs.shape[1] != n_classes:
        raise MedlibError(f"expected probabilities ({labels.shape[0]}, {n_classes}), got {probs.shape}")
    if labels.size == 0:
        return {"n": 0, "accuracy": math.nan, "balanced_accuracy": math.nan, "macro_f1": math.nan, "auroc": math.nan}
    pred = probs.argmax(axis=1)
    present = np.unique(labels)
    aucs = [roc_auc_score(labels == c, probs[:, c]) for c in range(n_classes)
            if c in present and (labels != c).any()]
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
            bacc = balanced_accuracy_score(labels, pred)
    return {
        "n": int(labels.size),
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(bacc),
        "macro_f1": float(f1_score(labels, pred, average="macro", zero_division=0)),
        "auroc": float(np.mean(aucs)) if len(aucs) >= 2 or (n_classes == 2 and aucs) else math.nan,
    }


def evaluate(model: nn.Module, loader: Iterable, device=None, n_classes: int | None = None, *,
             batch_to_device=None) -> dict:
    """:func:`classification_metrics` of ``model`` on ``loader`` (what the papers' tables report)."""
    probs, labels = predict(model, loader, device, batch_to_device=batch_to_device)
    n_classes = probs.shape[1] if n_classes is None else n_classes
    return classification_metrics(probs, labels, n_classes)


def _device_of(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- training


class _Splat(nn.Module):
    """Lets ``update_bn`` (which calls ``model(batch[0])``) drive a multi-input model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return _forward(self.model, x)


class _Inputs:
    """Yields ``[inputs]`` of each batch so that ``update_bn``'s ``batch[0]`` is the whole input."""

    def __init__(self, loader, to_device, device):
        self.loader, self.to_device, self.device = loader, to_device, device

    def __iter__(self):
        for batch in self.loader:
            yield [self.to_device(batch, self.device)[0]]


def _single_label(out, y) -> bool:
    return (isinstance(out, Tensor) and isinstance(y, Tensor) and out.ndim == 2 and y.ndim == 1
            and not y.is_floating_point())


def _correct(out, y) -> Tensor | None:
    """Number of correct argmax predictions (a device tensor), or None for other outputs."""
    return (out.detach().argmax(1) == y).sum() if _single_label(out, y) else None


def _batch_size(y, x) -> int:
    for t in (y, x):
        while isinstance(t, (list, tuple)) and t:
            t = t[0]
        if isinstance(t, dict) and t:
            t = next(iter(t.values()))
        if isinstance(t, Tensor) and t.ndim > 0:
            return int(t.shape[0])
    return 1


def fit(
    model: nn.Module,
    train_loader: Iterable,
    cfg: TrainConfig,
    *,
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    val_loader: Iterable | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    batch_to_device: Callable | None = None,
    on_epoch_end: Callable[[int, nn.Module, "History"], None] | None = None,
) -> History:
    """Train ``model`` in place for ``cfg.epochs`` epochs; return the :class:`History`.

    ``loss_fn(output, targets)`` defaults to cross-entropy with ``cfg.class_weights``.
    ``batch_to_device(batch, device) -> (inputs, targets)`` defaults to
    :func:`default_batch_to_device`. ``on_epoch_end(epoch, model, history)`` runs after the
    epoch's checkpoint is written (``epoch`` is 0-based). With ``cfg.swa_start`` the SWA
    average is updated after every epoch from ``swa_start`` on and returned, BN statistics
    recomputed, as ``history.swa_model``.
    """
    device = select_device(str(cfg.device)) if not isinstance(cfg.device, torch.device) else cfg.device
    amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    to_device_fn = batch_to_device or (lambda b, d: default_batch_to_device(b, d, channels_last))
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    weight = cfg.class_weights.to(device=device, dtype=torch.float32) if cfg.class_weights is not None else None
    if loss_fn is None:
        def loss_fn(out, y):
            if y is None:
                raise MedlibError("the default cross-entropy loss needs labels: the loader must yield (x, y)")
            return F.cross_entropy(out.float(), y, weight=weight)

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise MedlibError("the model has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    main_epochs = cfg.swa_start if (cfg.swa_start is not None and cfg.swa_lr is not None) else cfg.epochs
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(main_epochs, 1))
                 if cfg.scheduler == "cosine" else None)
    scaler = _grad_scaler(device, enabled=amp and device.type == "cuda")
    swa_model = AveragedModel(model) if cfg.swa_start is not None else None
    swa_scheduler = (SWALR(optimizer, swa_lr=cfg.swa_lr, anneal_epochs=1)
                     if cfg.swa_start is not None and cfg.swa_lr is not None else None)
    history = History()
    start_epoch = 0
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None

    if resume and ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("format") != _CHECKPOINT_FORMAT:
            raise MedlibError(f"{ckpt} is not a medlib training checkpoint; delete it or pass resume=False")
        if state["config"] != cfg.fingerprint():
            changed = sorted(k for k in cfg.fingerprint() if state["config"].get(k) != cfg.fingerprint()[k])
            raise MedlibError(
                f"{ckpt} was written with different settings ({', '.join(changed)}); resume with the "
                "same TrainConfig, or pass resume=False to start over"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if swa_scheduler is not None:
            swa_scheduler.load_state_dict(state["swa_scheduler"])
        scaler.load_state_dict(state["scaler"])
        if swa_model is not None and state["swa_model"] is not None:
            swa_model.load_state_dict(state["swa_model"])
        _set_rng_state(state["rng"])
        history.records = list(state["history"])
        start_epoch = history.resumed_from = int(state["epoch"])

    def save_checkpoint(epochs_done: int) -> None:
        if ckpt is None:
            return
        state = {
            "format": _CHECKPOINT_FORMAT,
            "epoch": epochs_done,
            "config": cfg.fingerprint(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            # SWALR keeps its annealing *function* in its state; the constructor recreates it
            "swa_scheduler": ({k: v for k, v in swa_scheduler.state_dict().items() if k != "anneal_func"}
                              if swa_scheduler is not None else None),
            "scaler": scaler.state_dict(),
            "swa_model": swa_model.state_dict() if swa_model is not None else None,
            "rng": _rng_state(),
            "history": history.records,
        }
        with atomic_path(ckpt) as tmp:
            torch.save(state, tmp)

    for epoch in range(start_epoch, cfg.epochs):
        _seed_epoch(cfg.seed, epoch, train_loader)
        started = time.perf_counter()
        model.train()
        # running sums stay on the device: no host synchronisation inside the epoch
        total_loss = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen, counted = 0, 0
        for batch in train_loader:
            x, y = to_device_fn(batch, device)
            with torch.autocast(device.type, enabled=amp):
                out = _forward(model, x)
                loss = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = _batch_size(y, x)
            total_loss += loss.detach().double() * n
            seen += n
            hits = _correct(out, y)
            if hits is not None:
                correct += hits
                counted += y.numel()
        if seen == 0:
            raise MedlibError("the training loader yielded no batches")
        train_loss = float(total_loss) / seen
        if not math.isfinite(train_loss):
            raise MedlibError(
                f"epoch {epoch + 1}: the training loss became {train_loss}; training diverged. "
                f"Lower the learning rate (now {cfg.lr}) or check the inputs for NaN."
            )
        lr_now = optimizer.param_groups[0]["lr"]
        in_swa = cfg.swa_start is not None and epoch >= cfg.swa_start
        if in_swa:
            swa_model.update_parameters(model)
        # the lr of the *next* epoch: SWALR takes over so that epoch swa_start already runs at swa_lr
        if swa_scheduler is not None and epoch + 1 >= cfg.swa_start:
            swa_scheduler.step()
        elif scheduler is not None:
            scheduler.step()
        record = {"epoch": epoch + 1, "train_loss": train_loss,
                  "train_accuracy": int(correct) / counted if counted else math.nan, "lr": lr_now}
        if val_loader is not None:
            record.update(_validate(model, val_loader, device, to_device_fn, loss_fn, amp))
        record["seconds"] = time.perf_counter() - started
        history.records.append(record)
        save_checkpoint(epoch + 1)
        if cfg.log_every and ((epoch + 1) % cfg.log_every == 0 or epoch + 1 == cfg.epochs):
            print(_progress_line(record, cfg.epochs), flush=True)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, history)

    if swa_model is not None:
        # BN statistics of the averaged weights: one forward pass over the training data,
        # with the same seeded order every time (so a resumed run recomputes them bitwise)
        _seed_epoch(cfg.seed, cfg.epochs, train_loader)
        update_bn(_Inputs(train_loader, to_device_fn, device), _Splat(swa_model.module))
        history.swa_model = swa_model.module
    return history


def _grad_scaler(device: torch.device, enabled: bool):
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _validate(model, loader, device, to_device_fn, loss_fn, amp) -> dict:
    model.eval()
    total, seen, probs, labels, single = 0.0, 0, [], [], True
    with torch.no_grad(), torch.autocast(device.type, enabled=amp):
        for batch in loader:
            x, y = to_device_fn(batch, device)
            out = _forward(model, x)
            n = _batch_size(y, x)
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
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)
