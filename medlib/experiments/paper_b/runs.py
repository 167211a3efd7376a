"""Training one run of one configuration (§4.1: Adam, one cosine into SWA, FusionM4Net's augmentation), then
predicting valid and test with TTA; two safetensors per run under ``$MEDLIB_HOME/artifacts/paper_b``, keyed by
:func:`run_key` (config, settings, seed, the decoded images' *content*, labels, splits, initial weights, step cap:
no paths or times, so a re-copied derm7pt keeps every run)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medlib.ammfm.loss import ammfm_loss
from medlib.ammfm.model import DEFAULT_STAGES
from medlib.ammfm.params import count_parameters
from medlib.ammfm.tasks import TASKS
from medlib.ammfm.tta import TTA_VIEWS, apply_view, predict
from medlib.data.augment import fusion_augment_pair, normalize, to_float
from medlib.errors import MedlibError
from medlib.experiments.data import ensure_dataset
from medlib.io import load_weights, save_weights
from medlib.paths import artifacts_dir, cache_dir
from medlib.profiles import PaperB, Profile
from medlib.runtime import seed_everything, select_device
from medlib.train import TrainConfig, fit

from .configs import Config
from .metrics import ConfigResult

__all__ = ["PairData", "PairBatches", "RunResult", "load_pairs", "train_config", "run_config", "load_model",
           "run_key", "training_config", "RESIZE_FIT", "EXPERIMENT_VERSION"]

# 2: whole images squashed to size × size, FusionM4Net's augmentation, one cosine into SWA,
#    content-keyed data and explicit weights
EXPERIMENT_VERSION = 2
RESIZE_FIT = "squash"  # §4.1 "resized to 224 × 224": the whole 768 × 512 image, no crop (FusionM4Net's cv2.resize)


@dataclass
class PairData:
    """derm7pt decoded once: uint8 image pairs at ``image_size``, labels, official splits."""

    dataset: object  # medlib.data.derm7pt.Derm7pt
    clinical: torch.Tensor  # (N, 3, S, S) uint8, memory-mapped cache
    dermoscopy: torch.Tensor
    labels: np.ndarray  # (N, 8) int64
    splits: dict[str, np.ndarray]
    source: str  # "synthetic" or "real"
    fingerprint: str  # content hash of pixels + labels + splits; part of every run key

    @property
    def tasks(self) -> dict[str, list[str]]:
        return self.dataset.tasks


def load_pairs(profile: Profile, dataset=None, image_size: int | None = None) -> PairData:
    """derm7pt for ``profile`` (or ``dataset``), each whole image resized (no crop) once into the image cache."""
    from medlib.data.cache import cached_images

    ds = dataset if dataset is not None else ensure_dataset("derm7pt", profile)
    size = int(image_size or profile.paper_b.image_size)
    missing = [s for s in ("train", "valid", "test") if s not in ds.splits]
    if missing:
        raise MedlibError(f"derm7pt at {ds.root} lacks the official split(s) {missing}; expected "
                          "meta/{train,valid,test}_indexes.csv beside meta.csv")
    clinical = cached_images(ds.clinical_paths, size, cache_dir(), progress=False, fit=RESIZE_FIT)
    dermoscopy = cached_images(ds.derm_paths, size, cache_dir(), progress=False, fit=RESIZE_FIT)
    labels = np.asarray(ds.labels, dtype=np.int64)
    splits = {k: np.asarray(v) for k, v in ds.splits.items()}
    # the fingerprint: what the training sees, by content (decoded pixels, so also the resize recipe; labels; splits)
    h = hashlib.blake2b(digest_size=16)
    for images in (clinical, dermoscopy):
        h.update(str(tuple(images.shape)).encode())
        h.update(memoryview(np.ascontiguousarray(images.numpy())).cast("B"))
    h.update(labels.tobytes())
    for name in ("train", "valid", "test"):
        h.update(name.encode() + np.asarray(splits[name], dtype=np.int64).tobytes())
    source = profile.data_source if dataset is None else "given"
    return PairData(ds, clinical, dermoscopy, labels, splits, source, h.hexdigest()[:16])


class PairBatches:
    """Batches ``((clinical, dermoscopy), labels)`` of one split held on ``device`` as uint8 (413 training pairs are
    124 MB at 224 px), a batch an index into them; :func:`medlib.train.fit` re-seeds ``generator`` every epoch.
    ``drop_last``: in training, as the heads' BatchNorm1d cannot normalise a last batch of one case."""

    def __init__(self, data: PairData, split: str, batch_size: int, *, shuffle: bool, seed: int,
                 device: torch.device, max_steps: int | None = None, drop_last: bool = False):
        index = torch.from_numpy(np.array(data.splits[split], dtype=np.int64))  # a writable copy
        device = torch.device(device)
        self.clinical = data.clinical[index].to(device)
        self.dermoscopy = data.dermoscopy[index].to(device)
        self.labels = torch.as_tensor(data.labels[index.numpy()]).to(device)
        self.batch_size, self.shuffle, self.drop_last, self.max_steps = int(batch_size), shuffle, drop_last, max_steps
        self.generator = torch.Generator().manual_seed(int(seed))
        if drop_last and len(self) == 0:
            raise MedlibError(f"the {split} split has {len(self.labels)} cases, fewer than one batch of "
                              f"{self.batch_size}; lower paper_b.batch_size")

    def __len__(self) -> int:
        n = len(self.labels)
        batches = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return min(batches, self.max_steps) if self.max_steps else batches

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.labels.device)
        for b in range(len(self)):
            i = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield (self.clinical[i], self.dermoscopy[i]), self.labels[i]


def _train_batch(batch, device):
    """Training batch on ``device``: FusionM4Net's paired augmentation, then ImageNet normalisation."""
    (clinical, dermoscopy), labels = batch
    c, d = fusion_augment_pair(clinical.to(device), dermoscopy.to(device))
    return (normalize(c), normalize(d)), labels.to(device)


def _eval_batch(batch, device):
    (clinical, dermoscopy), labels = batch
    return (normalize(to_float(clinical.to(device))), normalize(to_float(dermoscopy.to(device)))), labels.to(device)


@dataclass
class RunResult:
    """One trained run: ``predictions[variant][split][branch]`` = 8 (N, n_k) log-probabilities, ``targets[split]``.

    Variants: ``"swa/tta"`` (SWA weights, TTA), ``"swa/1"`` (identity view), ``"last/1"`` (last-epoch weights).
    """

    config: Config
    seed: int
    key: str
    weights_path: Path
    predictions: dict
    targets: dict
    meta: dict
    tasks: dict
    _metrics: dict = field(default_factory=dict, repr=False)

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.meta["history"])


def _settings(B: PaperB, overrides: dict | None) -> PaperB:
    if not overrides:
        return B
    known = [f.name for f in dataclasses.fields(PaperB)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise MedlibError(f"unknown paper_b setting(s) {unknown}; known: {known}")
    return dataclasses.replace(B, **overrides)


# Settings that do not change a run's weights or predictions: how many runs, the weight grid
# (searched later, on the predictions), the base seed (the run's own seed is keyed) and the
# pretrained flag (keyed as the weights' identity instead).
_NOT_IN_KEY = ("n_runs", "weight_grid", "seed", "pretrained")


def run_key(config: Config, B: PaperB, seed: int, data: PairData, max_steps: int | None, pretrained: bool) -> str:
    """Hash of exactly what determines a run's weights and predictions (see the module docstring)."""
    training = {k: v for k, v in dataclasses.asdict(B).items() if k not in _NOT_IN_KEY}
    blob = json.dumps({"config": dataclasses.asdict(config), "settings": training, "seed": seed,
                       "data": data.fingerprint, "max_steps": max_steps, "weights": config.weights(pretrained),
                       "stages": list(DEFAULT_STAGES), "version": EXPERIMENT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def training_config(B: PaperB, seed: int, device: torch.device | str = "cpu") -> TrainConfig:
    """Adam at ``lr``, one cosine over all ``epochs`` (FusionM4Net's), SWA over the last ``swa_epochs`` (no lr jump)."""
    swa_start = B.epochs - B.swa_epochs if 0 < B.swa_epochs <= B.epochs else None
    return TrainConfig(lr=B.lr, epochs=B.epochs, batch_size=B.batch_size, seed=seed, device=device,
                       scheduler="cosine", swa_start=swa_start, swa_lr=None,
                       log_every=max(B.epochs // 10, 1) if B.epochs >= 50 else 0, eval_every=B.eval_every)


def _paths(config: Config, seed: int, key: str) -> tuple[Path, Path]:
    base = artifacts_dir() / "paper_b" / f"{config.name}-s{seed}-{key}"
    return base.with_suffix(".safetensors"), base.with_name(base.name + ".predictions.safetensors")


_RUN_CACHE: dict[str, RunResult] = {}


def train_config(config: Config, profile: Profile, run: int = 0, *, seed: int | None = None,
                 data: PairData | None = None, overrides: dict | None = None, max_steps: int | None = None,
                 pretrained: bool | None = None, verbose: bool = True) -> RunResult:
    """Train ``config`` for run ``run`` (seed ``seed + run``, default the profile's first) and predict with TTA; cached
    (a second call trains nothing). ``overrides`` replace ``paper_b`` fields; ``max_steps`` caps batches per epoch and
    split (default the profile's); ``pretrained`` defaults to ``paper_b.pretrained``."""
    P = profile
    B = _settings(P.paper_b, overrides)
    seed = (P.first_seed if seed is None else int(seed)) + int(run)
    pretrained = B.pretrained if pretrained is None else bool(pretrained)
    max_steps = P.max_steps if max_steps is None else max_steps
    data = data if data is not None else load_pairs(P, image_size=B.image_size)
    if data.clinical.shape[-1] != B.image_size:
        raise MedlibError(f"data was decoded at {data.clinical.shape[-1]} px but the settings ask for "
                          f"{B.image_size} px; call load_pairs(profile, image_size={B.image_size})")
    key = run_key(config, B, seed, data, max_steps, pretrained)
    weights_path, pred_path = _paths(config, seed, key)
    if str(pred_path) in _RUN_CACHE and pred_path.is_file():
        return _RUN_CACHE[str(pred_path)]
    if not (weights_path.is_file() and pred_path.is_file()):
        _train_and_predict(config, P, B, seed, data, max_steps, pretrained, key, weights_path, pred_path, verbose)
    tensors, meta = load_weights(pred_path)
    predictions, targets = {}, {}
    for name, t in tensors.items():
        if name.startswith("targets/"):
            targets[name.removeprefix("targets/")] = t.numpy()
        else:  # variant/split/branch/task, a variant being two words ("swa/tta")
            variant, split, branch, k = name.rsplit("/", 3)
            slot = predictions.setdefault(variant, {}).setdefault(split, {})
            slot.setdefault(branch, [None] * len(TASKS))[int(k)] = t.numpy()
    _RUN_CACHE[str(pred_path)] = RunResult(config, seed, key, weights_path, predictions, targets, meta, data.tasks)
    return _RUN_CACHE[str(pred_path)]


def _train_and_predict(config, P, B, seed, data, max_steps, pretrained, key, weights_path, pred_path, verbose):
    device = select_device()
    seed_everything(seed)
    model = config.build(B.backbone_size, pretrained)
    cfg = training_config(B, seed, device)
    batches = {split: PairBatches(data, split, B.batch_size, shuffle=split == "train", seed=seed, device=device,
                                  max_steps=max_steps, drop_last=split == "train")
               for split in ("train", "valid", "test")}
    t0 = time.perf_counter()
    history = fit(model, batches["train"], cfg, loss_fn=ammfm_loss, batch_to_device=_train_batch,
                  val_loader=batches["valid"], val_batch_to_device=_eval_batch,
                  checkpoint_path=weights_path.with_suffix(".ckpt"), resume=True)
    train_seconds = time.perf_counter() - t0
    swa = history.swa_model if history.swa_model is not None else model
    t1 = time.perf_counter()
    tensors: dict[str, torch.Tensor] = {}
    for split in ("valid", "test"):
        per_view, targets = _predict_views(swa, config, batches[split], device, B.tta_views)
        last, _ = _predict_views(model, config, batches[split], device, 1)
        # TTA as in medlib.ammfm.tta.tta_predict: the log of the views' mean probability
        tta = {b: [np.log(np.clip(np.mean([np.exp(v[b][k]) for v in per_view], axis=0), 1e-12, None))
                   for k in range(len(TASKS))] for b in per_view[0]}
        variants = {"swa/tta": tta, "swa/1": per_view[0], "last/1": last[0]}
        for variant, outputs in variants.items():
            for branch, arrays in outputs.items():
                for k, a in enumerate(arrays):
                    tensors[f"{variant}/{split}/{branch}/{k}"] = torch.from_numpy(np.ascontiguousarray(a, np.float32))
        tensors[f"targets/{split}"] = torch.from_numpy(targets)
    meta = {
        "config": dataclasses.asdict(config), "name": config.name, "seed": seed, "key": key,
        "settings": dataclasses.asdict(B), "profile": P.label, "data_source": data.source,
        "data_fingerprint": data.fingerprint, "max_steps": max_steps, "pretrained": pretrained,
        "weights": config.weights(pretrained), "resize": RESIZE_FIT,
        "device": str(device), "train_seconds": train_seconds, "predict_seconds": time.perf_counter() - t1,
        "history": history.records, "trained_parameters": count_parameters(swa),
        "swa_start": cfg.swa_start, "schedule": "one cosine over all epochs; SWA over the last swa_epochs",
        "n_train": len(data.splits["train"]),
    }
    save_weights(weights_path, {k: v.detach().cpu() for k, v in swa.state_dict().items()}, meta)
    save_weights(pred_path, tensors, meta)
    weights_path.with_suffix(".ckpt").unlink(missing_ok=True)
    if verbose:
        last = history.records[-1]
        print(f"trained {config.name} (seed {seed}): {len(history.records)} epochs in {train_seconds:.0f} s, "
              f"loss {last['train_loss']:.3f}, valid {last.get('val_loss', math.nan):.3f}", flush=True)


def _predict_views(model, config: Config, batches, device, views: int):
    """Log-probabilities of each TTA view separately: both the TTA average and the identity-view prediction."""
    model.to(device)
    outs = []
    for view in TTA_VIEWS[:views]:
        def unpack(batch, view=view):
            (c, d), y = _eval_batch(batch, device)
            return (None if config.clinical is None else apply_view(c, view),
                    None if config.dermoscopy is None else apply_view(d, view), y)

        outputs, targets = predict(model, batches, device, views=1, unpack=unpack)
        outs.append(outputs)
    return outs, targets


def load_model(result: RunResult, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The SWA model of a run, rebuilt from its safetensors file, in eval mode on ``device``."""
    state, meta = load_weights(result.weights_path)
    model = result.config.build(meta["settings"]["backbone_size"], pretrained=False)
    model.load_state_dict(state)
    return model.to(device).eval()


def run_config(config: Config, profile: Profile, seed: int | None = None,
               n_runs: int | None = None, **kwargs) -> ConfigResult:
    """``n_runs`` runs (default ``paper_b.n_runs``) of ``config``; see :func:`train_config`."""
    n = int(n_runs or _settings(profile.paper_b, kwargs.get("overrides")).n_runs)
    if "data" not in kwargs:
        kwargs["data"] = _data_for(profile, kwargs.get("overrides"))
    return ConfigResult(config, [train_config(config, profile, run, seed=seed, **kwargs) for run in range(n)])


def _data_for(P: Profile, overrides: dict | None = None) -> PairData:
    B = _settings(P.paper_b, overrides)
    return _cached_pairs(P.name, P.dry_run, B.image_size, str(artifacts_dir()))


@lru_cache(maxsize=4)
def _cached_pairs(profile_name: str, dry: bool, image_size: int, home: str) -> PairData:
    # ``home`` keys the memo by $MEDLIB_HOME too: a changed home means other files
    from medlib.profiles import PROFILES, dry_run

    P = dry_run(PROFILES[profile_name]) if dry else PROFILES[profile_name]
    return load_pairs(P, image_size=image_size)


def results_of(rows: list[tuple[str, Config]], P: Profile, seed: int | None) -> dict[str, ConfigResult]:
    """Every row's :class:`ConfigResult` (a configuration listed twice is trained once: :data:`_RUN_CACHE`)."""
    return {label: run_config(cfg, P, seed) for label, cfg in rows}
