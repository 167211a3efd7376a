"""What a Part A session will train, what is already cached, and how long the rest should take.

:func:`training_plan` answers before anything trains, so a Colab reader can pick one table's
datasets and seeds for a session (``datasets = ["retina"]``) and the next session continues.
It never trains and never downloads a dataset: a dataset that is not on disk is listed with
every model to train. (In ``full`` it loads θ_pre's ImageNet weights, ~100 MB, to key the
models exactly as :func:`~medlib.experiments.paper_a.runs.train_sites` will.)

Times: a cached model's own measured epoch times (its history); for a model still to train,
the measured epoch time of a cached model of the same dataset and profile scaled by image
count; else, in ``full``, the model's FLOPs at a T4's assumed sustained rate
(:mod:`medlib.estimates`, the numbers README and ``book/running.md`` show), and in ``smoke`` the
CPU's measured constant (:data:`IMAGES_PER_SECOND`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import pandas as pd

from medlib.errors import DataError, MedlibError
from medlib.estimates import evaluations, forward_flops, gpu_seconds
from medlib.paths import artifacts_dir
from medlib.profiles import Profile

__all__ = ["IMAGES_PER_SECOND", "training_plan", "format_duration"]

# smoke's (training, evaluation) images per second when no cached model has measured them:
# test_resnet at 48 px on one core of this project's 2-core CPU machines, from the smoke book's
# Retina stand-in (4 s for a 120-image site's 8 epochs with its 120 test images: ~250/s and ~800/s).
IMAGES_PER_SECOND = {"smoke": (250.0, 800.0)}


def format_duration(seconds: float) -> str:
    """``'2 h 05 min'``, ``'12 min'``, ``'40 s'``: a plan's times as a reader wants them."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _metadata(path: Path) -> dict:
    from medlib.io import read_metadata

    try:
        return read_metadata(path)
    except (MedlibError, ValueError, OSError):
        return {}


def _epoch_seconds(meta: dict) -> float | None:
    seconds = [r.get("seconds") for r in meta.get("history", []) if isinstance(r, dict)]
    seconds = [float(s) for s in seconds if isinstance(s, (int, float)) and math.isfinite(s)]
    return float(np.mean(seconds)) if seconds else None


def _measured_rates(P: Profile) -> dict[str, float]:
    """{dataset: measured seconds per training image per epoch} from cached models of profile ``P``."""
    rates: dict[str, list[float]] = {}
    for path in sorted((artifacts_dir() / "paper_a").glob("*.safetensors")):
        meta = _metadata(path)
        epoch = _epoch_seconds(meta)
        if meta.get("profile") == P.label and epoch and meta.get("images") and meta.get("dataset"):
            rates.setdefault(meta["dataset"], []).append(epoch / float(meta["images"]))
    return {d: float(np.median(r)) for d, r in rates.items()}


def _estimate(P: Profile, dataset: str, n_train: int, n_test: int, rates: dict) -> tuple[float, str]:
    A = P.paper_a
    if P.max_steps is not None:  # a dry run: capped batches per epoch and per evaluated split
        n_train, n_test = (min(n, P.max_steps * A.batch_size) for n in (n_train, n_test))
    if dataset in rates:
        return rates[dataset] * n_train * A.epochs, "measured (cached models)"
    evaluated = evaluations(A.epochs, A.eval_every) * n_test
    if P.name in IMAGES_PER_SECOND:
        train_rate, eval_rate = IMAGES_PER_SECOND[P.name]
        return A.epochs * n_train / train_rate + evaluated / eval_rate, "estimated (CPU)"
    flops = forward_flops("A", A.arch, A.image_size) * (3 * A.epochs * n_train + evaluated)
    return gpu_seconds(flops, "T4"), "estimated (T4, from FLOPs)"


def _on_disk(name: str, P: Profile):
    """The dataset if it can be loaded without a download (stand-ins are written: seconds)."""
    from medlib.data import load_dataset
    from medlib.experiments.data import ensure_dataset
    from medlib.paths import data_root

    if P.data_source == "synthetic":
        return ensure_dataset(name, P)
    try:
        return load_dataset(name, data_root(name, "real"))
    except (DataError, MedlibError):
        return None


def training_plan(datasets, seeds, profile: Profile, *, split: str = "paper",
                  test_seed: int | None = None) -> pd.DataFrame:
    """One row per model :func:`~medlib.experiments.paper_a.runs.train_sites` needs: what is cached, what not.

    ``datasets`` / ``seeds``: None = all of the profile's. Columns: ``dataset``, ``seed``,
    ``role`` (``theta_pre``, ``site1``…, ``full``), ``images``, ``epochs``, ``cached``,
    ``seconds`` (measured for a cached model, else estimated: 0 is never claimed for work to do)
    and ``basis`` (where the time comes from). Trains nothing, downloads no dataset.
    """
    from medlib import pretrain
    from medlib.experiments.paper_a import runs

    P = profile
    A = P.paper_a
    datasets = list(A.datasets if datasets is None else ([datasets] if isinstance(datasets, str) else datasets))
    seeds = list(P.seeds if seeds is None else ([seeds] if isinstance(seeds, int) else seeds))
    unknown = sorted(set(datasets) - set(A.datasets))
    if unknown:
        raise MedlibError(f"unknown Paper A dataset(s) {unknown}: expected a subset of {list(A.datasets)}")
    if split not in runs.SPLITS:
        raise MedlibError(f"unknown split {split!r}; expected one of {runs.SPLITS}")
    rates = _measured_rates(P)
    rows = []
    theta_pre_ready = True
    if A.pretrain_epochs:  # smoke: θ_pre is itself a training, shared by every dataset and seed
        path = pretrain.pretrained_backbone_file(A)
        theta_pre_ready = path.is_file()
        seconds = _metadata(path).get("seconds") if theta_pre_ready else None
        est, basis = (float(seconds), "measured") if seconds else (
            A.pretrain_epochs * A.pretrain_images * 1.25 / IMAGES_PER_SECOND["smoke"][0], "estimated (CPU)")
        rows.append({"dataset": "(all)", "seed": A.seed, "role": "theta_pre", "images": A.pretrain_images,
                     "epochs": A.pretrain_epochs, "cached": theta_pre_ready, "seconds": est, "basis": basis})
    roles = [f"site{k}" for k in range(1, A.n_sites + 1)] + ["full"]
    for name in datasets:
        ds = _on_disk(name, P)
        for seed in seeds:
            if ds is None:  # not downloaded: everything is to train (sizes unknown until it is)
                rows += [{"dataset": name, "seed": seed, "role": role, "images": np.nan, "epochs": A.epochs,
                          "cached": False, "seconds": np.nan, "basis": "dataset not downloaded yet"} for role in roles]
                continue
            data = runs.paper_sites(name, P, seed, split=split, test_seed=test_seed)
            indices = dict(zip(roles, [*data.partition.sites, data.partition.train]))
            tr = None
            if theta_pre_ready:
                pre = runs.pretrained_classifier(P, len(data.classes), seed)
                tr = runs.Trained(name, P, seed, data, pre, [], pre, device=torch.device("cpu"))
            for role in roles:
                idx = indices[role]
                path = runs.model_path(tr, idx, role) if tr is not None else None
                cached = path is not None and path.is_file()
                epoch = _epoch_seconds(_metadata(path)) if cached else None
                if epoch is not None:
                    est, basis = epoch * len(_metadata(path).get("history", [])), "measured"
                else:
                    est, basis = _estimate(P, name, len(idx), len(data.partition.test), rates)
                rows.append({"dataset": name, "seed": seed, "role": role, "images": len(idx), "epochs": A.epochs,
                             "cached": cached, "seconds": est, "basis": basis})
    frame = pd.DataFrame(rows, columns=["dataset", "seed", "role", "images", "epochs", "cached", "seconds", "basis"])
    frame["time"] = frame["seconds"].map(format_duration)
    return frame
