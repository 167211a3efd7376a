"""θ_pre for the smoke profile: a short pretraining on a synthetic source task (Paper A §3.1).

The paper starts from ImageNet weights (the full profile: timm ``resnet50.tv_in1k``). Offline on a CPU a
random initialisation is no pretrained model, so the smoke θ_pre is trained briefly on 24 texture classes
(4 pattern families × 2 frequencies × 3 palettes, seeded) and kept as safetensors under
``$MEDLIB_HOME/artifacts/pretrained``, shared by every process and node of a home.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from medlib.errors import MedlibError

__all__ = ["N_SOURCE_CLASSES", "synthetic_source_task", "pretrain_backbone", "pretrain_key",
           "pretrained_backbone_file", "pretrained_backbone_path", "pretrained_backbone"]

N_SOURCE_CLASSES = 24
_GENERATOR_VERSION = 1  # bump when the images change, so old caches are not reused
_FAMILIES = ("grating", "rings", "checker", "blobs")
_FREQUENCIES = ((2.0, 3.5), (5.0, 8.0))  # cycles across the image, low and high band
_PALETTES = (  # (background, foreground) RGB in [0, 1]
    ((0.15, 0.05, 0.05), (0.95, 0.55, 0.25)),  # dark red / orange (fundus-like)
    ((0.10, 0.20, 0.10), (0.55, 0.90, 0.80)),  # green / cyan
    ((0.85, 0.80, 0.75), (0.25, 0.15, 0.45)),  # light skin tone / purple
)


def synthetic_source_task(n_images: int, image_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: float images in [0, 1], (n, 3, s, s), and balanced labels in [0, 24)."""
    if n_images < 1 or image_size < 8:
        raise MedlibError(f"need n_images >= 1 and image_size >= 8, got {n_images}, {image_size}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_images) % N_SOURCE_CLASSES
    labels = labels[torch.randperm(n_images, generator=g)]
    family = labels % len(_FAMILIES)
    band = (labels // len(_FAMILIES)) % len(_FREQUENCIES)
    palette = labels // (len(_FAMILIES) * len(_FREQUENCIES))

    def uniform(lo, hi, shape=(n_images,)):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    lo, hi = (torch.tensor([f[j] for f in _FREQUENCIES])[band] for j in (0, 1))
    freq = (lo + (hi - lo) * torch.rand(n_images, generator=g)).view(-1, 1, 1)
    theta = uniform(0, math.pi).view(-1, 1, 1)
    phase = uniform(0, 2 * math.pi).view(-1, 1, 1)
    cx, cy = uniform(-0.4, 0.4).view(-1, 1, 1), uniform(-0.4, 0.4).view(-1, 1, 1)

    axis = torch.linspace(-1, 1, image_size)
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    u, v = u.expand(n_images, -1, -1) - cx, v.expand(n_images, -1, -1) - cy
    along = u * torch.cos(theta) + v * torch.sin(theta)
    across = -u * torch.sin(theta) + v * torch.cos(theta)
    k = math.pi * freq  # freq cycles across the 2-unit-wide image

    bx = uniform(-0.9, 0.9, (n_images, 6)).view(n_images, 6, 1, 1)  # blob centres
    by = uniform(-0.9, 0.9, (n_images, 6)).view(n_images, 6, 1, 1)
    pattern = torch.empty(n_images, image_size, image_size)
    for f, name in enumerate(_FAMILIES):  # each image draws only its own family
        i = (family == f).nonzero().view(-1)
        if i.numel() == 0:
            continue
        if name == "grating":
            pattern[i] = 0.5 + 0.5 * torch.sin(k[i] * along[i] + phase[i])
        elif name == "rings":
            pattern[i] = 0.5 + 0.5 * torch.sin(k[i] * torch.sqrt(u[i] ** 2 + v[i] ** 2) + phase[i])
        elif name == "checker":
            pattern[i] = (torch.sin(k[i] * along[i] + phase[i]) * torch.sin(k[i] * across[i]) > 0).float()
        else:  # 6 Gaussian spots whose radius shrinks as the frequency grows
            radius = (0.9 / freq[i]).unsqueeze(1)
            d2 = ((u[i].unsqueeze(1) + cx[i].unsqueeze(1) - bx[i]) ** 2
                  + (v[i].unsqueeze(1) + cy[i].unsqueeze(1) - by[i]) ** 2)
            pattern[i] = torch.exp(-d2 / (2 * radius**2)).amax(dim=1)

    jitter = uniform(-0.08, 0.08, (n_images, 2, 3))
    background, foreground = (torch.tensor([p[j] for p in _PALETTES])[palette] + jitter[:, j] for j in (0, 1))
    images = background.view(-1, 3, 1, 1) + (foreground - background).view(-1, 3, 1, 1) * pattern.unsqueeze(1)
    brightness = uniform(0.8, 1.2).view(-1, 1, 1, 1)
    noise = 0.04 * torch.randn(images.shape, generator=g)
    return (images * brightness + noise).clamp_(0, 1), labels


def pretrain_key(paper_a, seed: int | None = None) -> str:
    """The cache key of the smoke θ_pre of ``paper_a`` (a :class:`~medlib.profiles.PaperA`)."""
    A = paper_a
    if not A.pretrain_epochs:
        raise MedlibError(f"profile arch {A.arch!r} has pretrain_epochs=0: its θ_pre is the downloaded ImageNet "
                          "model (or random weights in a dry run), not a trained file; call pretrained_backbone(...)")
    spec = {"arch": A.arch, "image_size": A.image_size, "epochs": A.pretrain_epochs, "images": A.pretrain_images,
            "seed": A.seed if seed is None else seed, "classes": N_SOURCE_CLASSES, "generator": _GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def pretrained_backbone_file(paper_a, seed: int | None = None, directory: str | os.PathLike | None = None) -> Path:
    """Where the smoke θ_pre is (or will be) kept: ``$MEDLIB_HOME/artifacts/pretrained`` unless ``directory``."""
    from medlib.paths import artifacts_dir

    directory = artifacts_dir() / "pretrained" if directory is None else Path(directory)
    return directory / f"pretrain-{paper_a.arch}-{paper_a.image_size}px-{pretrain_key(paper_a, seed)}.safetensors"


def pretrain_backbone(arch: str, image_size: int, epochs: int, n_images: int, seed: int,
                      *, lr: float = 2e-3, batch_size: int = 32, log_every: int = 0) -> tuple[nn.Module, dict]:
    """Train timm ``arch`` (24-way output) on the synthetic task: ``(backbone, info)``, with its held-out accuracy."""
    import timm

    from medlib.models import normalization
    from medlib.train import TrainConfig, evaluate, fit, make_loader

    if epochs < 1 or n_images < N_SOURCE_CLASSES:
        raise MedlibError(f"pretraining needs epochs >= 1 and >= {N_SOURCE_CLASSES} images, got {epochs}, {n_images}")
    started = time.perf_counter()
    mean, std = (torch.tensor(t).view(1, 3, 1, 1) for t in normalization(arch))
    n_test = max(N_SOURCE_CLASSES * 4, n_images // 5)
    images, labels = synthetic_source_task(n_images + n_test, image_size, seed)
    images = (images - mean) / std
    train = torch.utils.data.TensorDataset(images[:n_images], labels[:n_images])
    test = torch.utils.data.TensorDataset(images[n_images:], labels[n_images:])
    torch.manual_seed(seed)
    backbone = timm.create_model(arch, pretrained=False, num_classes=N_SOURCE_CLASSES)
    cfg = TrainConfig(lr=lr, epochs=epochs, batch_size=batch_size, seed=seed, device="cpu",
                      scheduler="cosine", log_every=log_every)
    fit(backbone, make_loader(train, batch_size, shuffle=True, seed=seed), cfg)
    metrics = evaluate(backbone, make_loader(test, 256, shuffle=False), "cpu", N_SOURCE_CLASSES)
    info = {"source_task": f"synthetic textures v{_GENERATOR_VERSION}", "source_classes": N_SOURCE_CLASSES,
            "source_test_accuracy": metrics["accuracy"], "chance": 1 / N_SOURCE_CLASSES,
            "seconds": round(time.perf_counter() - started, 1)}
    return backbone.eval(), info


def pretrained_backbone_path(paper_a, directory: str | os.PathLike | None = None, seed: int | None = None) -> Path:
    """The smoke θ_pre's safetensors file (:func:`pretrained_backbone_file`), pretrained once when missing."""
    from medlib.io import file_lock, read_metadata, save_weights

    A, seed = paper_a, paper_a.seed if seed is None else seed
    key, path = pretrain_key(A, seed), pretrained_backbone_file(A, seed, directory)

    def cached() -> bool:
        try:
            read_metadata(path)  # also checks the header covers the file: a truncated copy is not cached
            return True
        except ValueError:  # missing or damaged
            return False

    if cached():
        return path
    # processes sharing a home (notebook lanes, hospital commands) pretrain it once: the others wait
    with file_lock(path.with_name(f".{path.name}.lock"),
                   waiting=f"[pretrain] waiting for another process to write {path.name}"):
        if cached():  # written by the process we waited for
            return path
        path.unlink(missing_ok=True)  # a damaged (e.g. truncated) cache file: make it again
        print(f"[pretrain] θ_pre for {A.arch}: {A.pretrain_epochs} epochs on {A.pretrain_images} synthetic "
              f"texture images ({A.image_size}px, seed {seed})", flush=True)
        backbone, info = pretrain_backbone(A.arch, A.image_size, A.pretrain_epochs, A.pretrain_images, seed)
        accuracy, chance = info["source_test_accuracy"], info["chance"]
        print(f"[pretrain] source-task test accuracy {accuracy:.3f} (chance {chance:.3f}) in {info['seconds']:.1f}s "
              f"→ {path.name}", flush=True)
        if accuracy < 3 * chance:
            raise MedlibError(f"the synthetic pretraining of {A.arch} reached only {accuracy:.3f} accuracy (chance "
                              f"{chance:.3f}); that is not a pretrained model. Raise pretrain_epochs / pretrain_images "
                              "in the profile.")
        meta = {"arch": A.arch, "image_size": A.image_size, "epochs": A.pretrain_epochs, "images": A.pretrain_images,
                "seed": seed, "cache_key": key, **info}
        save_weights(path, backbone.state_dict(), meta)
    return path


def pretrained_backbone(paper_a, directory: str | os.PathLike | None = None, seed: int | None = None) -> nn.Module:
    """θ_pre's backbone: ``paper_a.weights`` (full: ``resnet50.tv_in1k``, torchvision's IMAGENET1K_V1, not timm's
    default recipe), else the cached synthetic pretraining (smoke), else seeded random weights (dry run)."""
    from medlib.models import create_backbone

    if paper_a.weights:
        return create_backbone(paper_a.weights, pretrained=True)
    if not paper_a.pretrain_epochs:
        torch.manual_seed(paper_a.seed if seed is None else seed)
        return create_backbone(paper_a.arch, pretrained=False)
    return create_backbone(paper_a.arch, pretrained_path=pretrained_backbone_path(paper_a, directory, seed))
