"""Training for Paper A (§3.1, §4.1): the book's site split, θ_pre, the site models and full training.

Every fine-tuned model is cached under ``$MEDLIB_HOME/artifacts/paper_a`` by :func:`artifact_key`:
exactly what determines its weights (data, indices, θ_pre, settings, seed), never λ or the λ grid.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from medlib.errors import MedlibError
from medlib.experiments.data import SiteData, ensure_dataset
from medlib.experiments.paper_a.batches import AUGMENTATION_ID, DeviceBatches
from medlib.experiments.paper_a.paper import PAPER_TEST_SIZES, theta_pre_source
from medlib.models import Classifier, create_backbone, load_classifier, save_classifier
from medlib.paths import artifacts_dir, cache_dir
from medlib.pretrain import pretrained_backbone
from medlib.profiles import Profile
from medlib.runtime import seed_everything, select_device
from medlib.train import TrainConfig, class_weights_from_labels, fit, predict

__all__ = ["Trained", "paper_sites", "split_sites", "pretrained_classifier", "finetune_config",
           "artifact_key", "model_path", "train_sites", "SPLITS"]

SPLITS = ("paper", "official")


def split_sites(ds, profile: Profile, seed: int | None = None, *, split: str = "paper", method: str | None = None,
                test_seed: int | None = None, n_sites: int | None = None, progress: bool = False) -> SiteData:
    """A loaded dataset split into ``n_sites`` hospitals plus a held-out test set (§4.1): the book's split.

    ``split="paper"``: a test set of :data:`~medlib.experiments.paper_a.paper.PAPER_TEST_SIZES` on real data,
    else of ``test_fraction``, by patient/case when known, stratified; drawn with ``test_seed`` (None: the
    profile's first seed, one test set for every seed). ``split="official"``: the dataset's own test split.
    """
    from medlib.data.cache import cached_images
    from medlib.data.partition import partition_sites

    P = profile
    seed = P.first_seed if seed is None else seed
    n_sites = P.paper_a.n_sites if n_sites is None else n_sites
    method = method or P.paper_a.partition
    if split not in SPLITS:
        raise MedlibError(f"unknown split {split!r}; expected one of {SPLITS}")
    images = cached_images(ds.image_paths, P.paper_a.image_size, cache_dir(), progress=progress)
    labels = np.asarray(ds.labels)
    if split == "official":
        if "test" not in ds.splits:
            raise MedlibError(f"{ds.name} has no official test split (splits: {sorted(ds.splits) or 'none'}); "
                              "use split='paper'")
        part = partition_sites(labels, n_sites, method=method, groups=ds.groups, seed=seed,
                               test_indices=ds.splits["test"])
        return SiteData(ds, images, labels, part)
    fraction = P.paper_a.test_fraction
    if P.data_source == "real" and ds.name in PAPER_TEST_SIZES:
        fraction = PAPER_TEST_SIZES[ds.name] / len(labels)
        if fraction >= 0.5:  # e.g. a hospital's own, smaller copy of the dataset under --root
            raise MedlibError(f"{ds.name} at {ds.root} has {len(labels)} images; the paper's test set alone is "
                              f"{PAPER_TEST_SIZES[ds.name]}: give the whole dataset, or use the smoke profile")
    part = partition_sites(labels, n_sites, method=method, groups=ds.groups, seed=seed, test_fraction=fraction,
                           test_seed=P.first_seed if test_seed is None else test_seed)
    return SiteData(ds, images, labels, part)


def paper_sites(name: str, profile: Profile, seed: int | None = None, **kwargs) -> SiteData:
    """Dataset ``name`` of ``profile`` (written or downloaded once) split as :func:`split_sites` does."""
    return split_sites(ensure_dataset(name, profile), profile, seed, **kwargs)


@dataclass
class Trained:
    """One seed of one dataset: its split, θ_pre, the site models, full training, and their batches."""

    dataset: str
    profile: Profile
    seed: int
    data: SiteData
    pretrained: Classifier | None = None
    sites: list[Classifier] = field(default_factory=list)
    full: Classifier | None = None
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    device: torch.device = field(default_factory=select_device)
    _digests: dict = field(default_factory=dict, repr=False)  # content hashes, computed once
    _on_device: dict = field(default_factory=dict, repr=False)  # {device: (images, labels)}, copied once

    @property
    def n_classes(self) -> int:
        return len(self.data.classes)

    def loader(self, indices, *, train: bool, seed: int | None = None) -> DeviceBatches:
        """Batches of ``indices`` on ``device``: shuffled and augmented there for training, else
        deterministic and un-augmented (evaluation, BatchNorm statistics); at most ``max_steps``."""
        device = torch.device(self.device)
        if device not in self._on_device:  # one copy per device, shared by every loader of the dataset
            self._on_device.clear()
            self._on_device[device] = (self.data.images.to(device),
                                       torch.as_tensor(np.asarray(self.data.labels), dtype=torch.int64).to(device))
        images, labels = self._on_device[device]
        return DeviceBatches(images, labels, indices, self.profile.paper_a.batch_size, train=train,
                             seed=self.seed if seed is None else seed, device=self.device,
                             max_steps=self.profile.max_steps)

    def part_loader(self, part: int, *, train: bool):
        """Part ``part``'s (0-based) data alone: what hospital ``part + 1`` holds."""
        return self.loader(self.data.partition.sites[part], train=train, seed=self.seed + part)

    def site_loaders(self, train: bool = True) -> list:
        return [self.part_loader(k, train=train) for k in range(len(self.data.partition.sites))]

    @property
    def test_loader(self):
        return self.loader(self.data.partition.test, train=False)

    def accuracy(self, model) -> float:
        """Test accuracy in percent, as in the paper's tables; a NaN output (broken BatchNorm) counts as wrong."""
        probs, labels = predict(model.to(self.device), self.test_loader, self.device, max_steps=self.profile.max_steps)
        ok = np.isfinite(probs).all(axis=1)
        return 100.0 * float(np.mean(ok & (probs.argmax(axis=1) == labels)))


def pretrained_classifier(P: Profile, n_classes: int, seed: int, pretrained_path=None) -> Classifier:
    """θ_pre with a new ``n_classes`` head, identical for every site given the seed (§3.1, §4.1): heads from
    different random draws would average unrelated directions."""
    if pretrained_path is not None:
        backbone = create_backbone(P.paper_a.arch, pretrained_path=pretrained_path)
    else:
        backbone = pretrained_backbone(P.paper_a)
    torch.manual_seed(seed)
    return Classifier(backbone, n_classes, arch=P.paper_a.arch).eval()


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        t = torch.as_tensor(a).detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def artifact_key(tr: Trained, indices: np.ndarray) -> str:
    """What determines a fine-tuned model's weights and history, and nothing else."""
    P = tr.profile.paper_a
    if not tr._digests:  # hashed once per Trained (hundreds of MB at 224 px)
        tr._digests.update(data=_digest(tr.data.images, tr.data.labels),
                           theta_pre=_digest(*tr.pretrained.state_dict().values()))
    parts = {
        "dataset": tr.dataset, "data": tr._digests["data"], "indices": _digest(np.asarray(indices)),
        "test": _digest(np.asarray(tr.data.partition.test)),  # the validation curve in the history
        "theta_pre": tr._digests["theta_pre"], "weights": P.weights,
        "training": {"arch": P.arch, "image_size": P.image_size, "lr": P.lr, "epochs": P.epochs,
                     "batch_size": P.batch_size, "augmentation": AUGMENTATION_ID},
        "seed": tr.seed, "max_steps": tr.profile.max_steps,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def model_path(tr: Trained, indices: np.ndarray, role: str):
    """Where the model fine-tuned on ``indices`` as ``role`` (``site1``…, ``full``) is cached."""
    return artifacts_dir() / "paper_a" / f"{tr.dataset}-{role}-{artifact_key(tr, indices)}.safetensors"


def finetune_config(tr: Trained, indices: np.ndarray, **changes) -> TrainConfig:
    """Table 4's settings for fine-tuning on ``indices``, class weights from their labels (also the hospital CLI's)."""
    P = tr.profile.paper_a
    settings = dict(lr=P.lr, epochs=P.epochs, batch_size=P.batch_size, seed=tr.seed, device=tr.device, log_every=0,
                    class_weights=class_weights_from_labels(tr.data.labels[indices], tr.n_classes),
                    max_steps=tr.profile.max_steps, eval_every=P.eval_every)
    return TrainConfig(**{**settings, **changes})


def _finetune(tr: Trained, indices: np.ndarray, role: str) -> tuple[Classifier, pd.DataFrame]:
    """Fine-tune θ_pre on ``indices`` (a site, or all of them); cached by :func:`artifact_key`."""
    P = tr.profile.paper_a
    path = model_path(tr, indices, role)
    if path.is_file():
        model, meta = load_classifier(path)
        return model.eval(), pd.DataFrame(meta["history"])
    cfg = finetune_config(tr, indices)
    model = copy.deepcopy(tr.pretrained)
    seed_everything(tr.seed)
    t0 = time.perf_counter()
    history = fit(model, tr.loader(indices, train=True), cfg, val_loader=tr.test_loader,
                  checkpoint_path=path.with_suffix(".ckpt"), resume=True)
    frame = history.to_frame()
    last = frame.iloc[-1]
    print(f"  {tr.dataset} {role:>6}: {len(indices):4d} images, {P.epochs} epochs, test acc "
          f"{100 * last.get('val_accuracy', float('nan')):.1f}% ({time.perf_counter() - t0:.0f} s)", flush=True)
    meta = {"history": frame.to_dict("records"), "role": role, "dataset": tr.dataset, "profile": tr.profile.label,
            "seed": tr.seed, "theta_pre": theta_pre_source(tr.profile), "images": len(indices),
            "device": str(tr.device)}
    save_classifier(path, model.cpu(), meta)
    path.with_suffix(".ckpt").unlink(missing_ok=True)
    return model.eval(), frame


def train_sites(dataset: str, profile: Profile, seed: int | None = None, *,
                split: str = "paper", test_seed: int | None = None) -> Trained:
    """θ_pre, the site models and the full-training model for ``dataset`` (§3.1, §4.1).

    ``seed`` (None: the profile's first, the tables' models) and ``test_seed`` as in :func:`split_sites`.
    """
    P = profile
    seed = P.first_seed if seed is None else seed
    data = paper_sites(dataset, P, seed, split=split, test_seed=test_seed)
    pre = pretrained_classifier(P, len(data.classes), seed)
    tr = Trained(dataset, P, seed, data, pre, full=pre)
    print(f"[{dataset}] seed {seed}: {P.paper_a.arch} from {theta_pre_source(P)}, "
          f"{P.paper_a.n_sites} sites + full training ({P.describe()})", flush=True)
    for k, idx in enumerate(data.partition.sites, 1):
        model, hist = _finetune(tr, idx, f"site{k}")
        tr.sites.append(model)
        tr.histories[f"site {k}"] = hist
    tr.full, tr.histories["full"] = _finetune(tr, data.partition.train, "full")
    return tr
