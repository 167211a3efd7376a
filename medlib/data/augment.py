"""Augmentation over cached uint8 image tensors; images leave as float32 with ImageNet normalisation.

Paper B, Section 4.1: "flipping, shifting, scaling, rotating, and brightening". :func:`train_transform`
(torchvision v2, per sample) with :class:`TensorImageDataset` is the baseline of ``benches/bench_data.py``;
:func:`gpu_augment` does the same for a whole batch in one ``grid_sample``, each sample with its own draw;
:func:`fusion_augment_pair` is Paper B's pair augmentation with FusionM4Net's magnitudes (:data:`FUSION_RECIPE`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms import v2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "train_transform", "TensorImageDataset", "to_float", "normalize",
           "affine_theta", "random_affine_theta", "apply_affine", "gpu_augment", "FusionRecipe", "FUSION_RECIPE",
           "draw_fusion_params", "fusion_theta", "fusion_augment_pair"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Defaults for "flipping, shifting, scaling, rotating, brightening" (the paper gives no values).
DEGREES = 15.0
TRANSLATE = 0.1
SCALE = (0.9, 1.1)
BRIGHTNESS = 0.2


def train_transform(size: int | None = None, *, flips: bool = True, degrees: float = DEGREES,
                    translate: float = TRANSLATE, scale: tuple[float, float] = SCALE,
                    brightness: float = BRIGHTNESS) -> v2.Compose:
    """(Resize to ``size``,) random flips, shift/scale/rotate, brightness; then float + ImageNet normalisation."""
    steps = [v2.Resize((size, size), antialias=True)] if size else []
    steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()] if flips else []
    return v2.Compose(steps + [
        v2.RandomAffine(degrees=degrees, translate=(translate, translate), scale=scale),
        v2.ColorJitter(brightness=brightness),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class TensorImageDataset(Dataset):
    """``(image, label)`` pairs from a uint8 ``(N, 3, H, W)`` tensor (the memory-mapped cache); ``indices`` selects
    a subset (a site) without copying; ``transform=None`` keeps the uint8 image (for :func:`gpu_augment`)."""

    def __init__(self, images: torch.Tensor, labels, transform: Callable | None = None, indices=None):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W); got shape {tuple(images.shape)}.")
        n = images.shape[0]
        self.images, self.transform = images, transform
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if self.labels.shape[0] != n:
            raise ValueError(f"{self.labels.shape[0]} labels for {n} images; expected one label (row) per image.")
        self.indices = torch.arange(n) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        if self.indices.numel() and (self.indices.min() < 0 or self.indices.max() >= n):
            raise IndexError(f"indices must lie in [0, {n}); got range "
                             f"[{int(self.indices.min())}, {int(self.indices.max())}].")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        image = self.images[j]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[j]


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is returned as float32 unchanged."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch.float()


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of a float ``(B, 3, H, W)`` batch in [0, 1], on its device."""
    mean, std = _imagenet_stats(batch.device, batch.dtype)
    return (batch - mean) / std


@functools.lru_cache(maxsize=None)
def _imagenet_stats(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # built once per device: a tensor made from Python numbers is a copy to the GPU, which waits for its queue
    def stat(values):
        return torch.tensor(values, device=device, dtype=dtype).view(1, 3, 1, 1)

    return stat(IMAGENET_MEAN), stat(IMAGENET_STD)


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def affine_theta(angle_deg: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
                 fx: torch.Tensor, fy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(n, 2, 3)`` matrices for ``F.affine_grid`` from per-sample parameters (all shape ``(n,)``).

    Forward: flip (``fx``, ``fy`` = -1), rotate by ``angle_deg`` and scale about the centre, shift by
    (``tx``, ``ty``) fractions of width and height. ``affine_grid`` maps output to input, so this is the
    inverse, built in pixels and converted to the [-1, 1] grid (angle-true on non-square images).
    """
    angle = angle_deg * (math.pi / 180.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    aspect = width / height
    theta = torch.zeros(angle.shape[0], 2, 3, device=angle.device)
    # inverse rotation/scale [[c, s], [-s, c]] / scale, flips, pixel -> grid units
    theta[:, 0, 0] = fx * cos
    theta[:, 0, 1] = fx * sin / aspect
    theta[:, 1, 0] = -fy * sin * aspect
    theta[:, 1, 1] = fy * cos
    # input = A^-1 (output - t), with t in grid units (a fraction f of the image is 2f)
    theta[:, 0, 2] = -(theta[:, 0, 0] * 2 * tx + theta[:, 0, 1] * 2 * ty)
    theta[:, 1, 2] = -(theta[:, 1, 0] * 2 * tx + theta[:, 1, 1] * 2 * ty)
    return theta


def random_affine_theta(n: int, height: int, width: int, *, hflip: float = 0.5, vflip: float = 0.5,
                        degrees: float = DEGREES, translate: float = TRANSLATE, scale: Sequence[float] = SCALE,
                        generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """:func:`affine_theta` with parameters drawn independently for each of ``n`` samples."""
    def flip(p):
        return torch.where(torch.rand(n, generator=generator, device=device) < p, -1.0, 1.0)

    def uniform(low, high):
        return _uniform(n, low, high, generator, device)

    return affine_theta(uniform(-degrees, degrees), uniform(scale[0], scale[1]), uniform(-translate, translate),
                        uniform(-translate, translate), flip(hflip), flip(vflip), height, width)


def apply_affine(batch: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(batch.dtype), list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gpu_augment(batch: torch.Tensor, *, hflip: float = 0.5, vflip: float = 0.5, degrees: float = DEGREES,
                translate: float = TRANSLATE, scale: Sequence[float] = SCALE, brightness: float = BRIGHTNESS,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample random flips, affine and brightness for a ``(B, 3, H, W)`` batch on its device; float32 in
    [0, 1] (apply :func:`normalize` next). ``generator`` (on the batch's device) makes the draw reproducible."""
    x = to_float(batch)
    theta = random_affine_theta(x.shape[0], x.shape[2], x.shape[3], hflip=hflip, vflip=vflip, degrees=degrees,
                                translate=translate, scale=scale, generator=generator, device=x.device)
    x = apply_affine(x, theta)
    if not brightness:
        return x
    factor = _uniform(x.shape[0], max(0.0, 1.0 - brightness), 1.0 + brightness, generator, x.device)
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


# --- FusionM4Net's recipe


@dataclass(frozen=True)
class FusionRecipe:
    """FusionM4Net's albumentations pipeline (its ``dataloader.py``), one field per magnitude.

    ``Compose([VerticalFlip, HorizontalFlip, ShiftScaleRotate(0.0625, 0.5, 45), RandomRotate90,
    RandomContrast, RandomBrightness, RandomGamma], p=0.5)``, each step p = 0.5; the clinical image is
    the ``image`` and the dermoscopic one the ``mask``: shared geometry, photometric steps on the
    clinical image only, with albumentations' default limits.
    """

    p_block: float = 0.5
    p_step: float = 0.5
    shift: float = 0.0625  # fraction of the side
    scale: float = 0.5  # scale factor in [1 - scale, 1 + scale]
    rotate: float = 45.0  # degrees
    contrast: float = 0.2  # pixel × (1 ± contrast)
    brightness: float = 0.2  # pixel + (± brightness) × full range
    gamma: tuple[float, float] = (0.8, 1.2)  # pixel ** gamma


FUSION_RECIPE = FusionRecipe()
_STEPS = ("vflip", "hflip", "shift_scale_rotate", "rotate90", "contrast", "brightness", "gamma")


def draw_fusion_params(n: int, recipe: FusionRecipe = FUSION_RECIPE, *, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per-sample parameters of :data:`FUSION_RECIPE` for ``n`` pairs (one draw per pair).

    ``on/<step>`` is True where the step runs (block with ``p_block``, then step with ``p_step``); a
    step that does not run gets its identity values, so the whole batch is always transformed at once.
    """
    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=device)

    block = rand(n) < recipe.p_block
    on = {step: block & (rand(n) < recipe.p_step) for step in _STEPS}
    one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)

    def uniform(step, low, high, identity):
        return torch.where(on[step], low + (high - low) * rand(n), identity)

    ssr = "shift_scale_rotate"
    return {
        **{f"on/{s}": v for s, v in on.items()},
        "vflip": torch.where(on["vflip"], -one, one),
        "hflip": torch.where(on["hflip"], -one, one),
        "angle": uniform(ssr, -recipe.rotate, recipe.rotate, zero),
        "scale": uniform(ssr, 1 - recipe.scale, 1 + recipe.scale, one),
        "shift_x": uniform(ssr, -recipe.shift, recipe.shift, zero),
        "shift_y": uniform(ssr, -recipe.shift, recipe.shift, zero),
        "quarter_turns": torch.where(on["rotate90"], torch.randint(0, 4, (n,), generator=generator, device=device),
                                     torch.zeros(n, dtype=torch.long, device=device)),
        "contrast": uniform("contrast", 1 - recipe.contrast, 1 + recipe.contrast, one),
        "brightness": uniform("brightness", -recipe.brightness, recipe.brightness, zero),
        "gamma": uniform("gamma", recipe.gamma[0], recipe.gamma[1], one),
    }


def fusion_theta(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(n, 2, 3)`` ``affine_grid`` matrices of the geometric steps, in albumentations' order.

    Forward on the [-1, 1] grid of a square image: flips, rotate/scale about the centre and shift
    (2 × the fraction of the side), ``quarter_turns`` × 90°. ``affine_grid`` wants the inverse
    ``[[A⁻¹, -A⁻¹ t]]``, with ``A⁻¹`` in closed form (``torch.linalg.inv`` syncs with the host).
    """
    n = params["angle"].shape[0]
    device = params["angle"].device
    forward = torch.eye(3, device=device).repeat(n, 1, 1)
    flips = torch.diag_embed(torch.stack([params["hflip"], params["vflip"], torch.ones(n, device=device)], 1))
    a = params["angle"] * (math.pi / 180.0)
    s = params["scale"]
    ssr = torch.zeros(n, 3, 3, device=device)
    ssr[:, 0, 0], ssr[:, 0, 1] = s * torch.cos(a), -s * torch.sin(a)
    ssr[:, 1, 0], ssr[:, 1, 1] = s * torch.sin(a), s * torch.cos(a)
    ssr[:, 0, 2], ssr[:, 1, 2], ssr[:, 2, 2] = 2 * params["shift_x"], 2 * params["shift_y"], 1.0
    q = params["quarter_turns"].to(torch.float64) * (math.pi / 2)
    # exact 0/±1 entries: round away the float error of cos(π/2)
    c, si = torch.cos(q).round().float(), torch.sin(q).round().float()
    turn = torch.zeros(n, 3, 3, device=device)
    turn[:, 0, 0], turn[:, 0, 1], turn[:, 1, 0], turn[:, 1, 1], turn[:, 2, 2] = c, -si, si, c, 1.0
    forward = turn @ ssr @ flips @ forward
    a, b, c, d = forward[:, 0, 0], forward[:, 0, 1], forward[:, 1, 0], forward[:, 1, 1]
    inverse = torch.stack([d, -b, -c, a], 1).view(n, 2, 2) / (a * d - b * c).view(n, 1, 1)
    return torch.cat([inverse, -inverse @ forward[:, :2, 2:]], 2)


def _photometric(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Contrast (×), brightness (+), gamma (**) in albumentations' order, clipped like its uint8 LUTs."""
    view = (-1, 1, 1, 1)
    x = (x * params["contrast"].view(view)).clamp_(0.0, 1.0)
    x = (x + params["brightness"].view(view)).clamp_(0.0, 1.0)
    return x.pow(params["gamma"].view(view))


def fusion_augment_pair(clinical: torch.Tensor, dermoscopy: torch.Tensor, recipe: FusionRecipe = FUSION_RECIPE, *,
                        params: dict[str, torch.Tensor] | None = None, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper B's training augmentation of a batch of pairs, on the batches' device; float32 in [0, 1].

    Pair k of both batches gets the same geometry (reflected borders: torch's "reflection" repeats the
    edge pixel, OpenCV's ``BORDER_REFLECT``, not albumentations' ``BORDER_REFLECT_101``); contrast,
    brightness and gamma change the clinical image only. ``params`` (:func:`draw_fusion_params`) fixes the draw.
    """
    if clinical.shape != dermoscopy.shape:
        raise ValueError(f"clinical {tuple(clinical.shape)} and dermoscopy {tuple(dermoscopy.shape)} batches must "
                         "have the same shape (both images of a pair at the same size)")
    if clinical.ndim != 4 or clinical.shape[2] != clinical.shape[3]:
        raise ValueError(f"expected square (B, 3, S, S) batches (quarter turns keep the shape only then); "
                         f"got {tuple(clinical.shape)}")
    c, d = to_float(clinical), to_float(dermoscopy)
    if params is None:
        params = draw_fusion_params(c.shape[0], recipe, generator=generator, device=c.device)
    theta = fusion_theta(params).to(c.dtype)
    grid = F.affine_grid(theta, list(c.shape), align_corners=False)
    warp = {"mode": "bilinear", "padding_mode": "reflection", "align_corners": False}
    return _photometric(F.grid_sample(c, grid, **warp), params), F.grid_sample(d, grid, **warp)
