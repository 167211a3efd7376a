"""Synthetic stand-ins for the four datasets in exactly their real on-disk layouts (read by the real loaders).

Classes differ in learnable shapes, textures and colours; each device / patient / video has its own acquisition;
frames of one bladder case share one scene (a frame-level split leaks); derm7pt's clinical image is less
informative than the dermoscopic one, as in Paper B. Same ``seed`` -> byte-identical files, written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from medlib.data.bladder import ANNOTATION_COLUMNS, RELEASE_DIR
from medlib.data.derm7pt import META_COLUMNS, SPLIT_FILES, TASK_COLUMNS, TASK_GROUPS
from medlib.data.pad_ufes import PAD_COLUMNS
from medlib.data.partition import largest_remainder
from medlib.data.retina import RETINA_FOLDERS
from medlib.errors import DataError

__all__ = ["synthesize", "SYNTH_NAMES", "SIZES", "MARKER_NAME", "SYNTH_VERSION"]

# small: seconds (smoke profile); medium: the real counts; real-size: a few images per class at real sizes (dry runs)
SIZES = ("small", "medium", "real-size")
MARKER_NAME = ".medlib-synth.json"
SYNTH_VERSION = 3  # bump when the generator changes, so cached folders are rewritten

# --- drawing primitives


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per (seed, dataset, item): items do not depend on each other."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (broadcastable) with the shorter side spanning [-1, 1]."""
    s = min(h, w) / 2.0
    y = ((np.arange(h, dtype=np.float32) - (h - 1) / 2) / s)[:, None]
    x = ((np.arange(w, dtype=np.float32) - (w - 1) / 2) / s)[None, :]
    return y, x


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field (std ~0.7) with about ``cells`` bumps across the image."""
    g = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(g).resize((w, h), Image.BICUBIC), dtype=np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _blob(y, x, cy, cx, r, rng, irregular=0.0, soft=0.02, stretch=1.0, angle=0.0, max_wobble=3.0) -> np.ndarray:
    """Soft disc whose radius wobbles with the angle (``irregular``) within ``[0.3 r, max_wobble r]``."""
    harmonics = [(irregular * rng.normal(0, 1.0 / k), rng.uniform(0, 2 * math.pi)) for k in range(2, 7)]
    reach = r * (1 + sum(abs(a) for a, _ in harmonics)) * max(1.0, stretch, 1.0 / max(stretch, 1e-3)) + 6 * soft
    ys = np.flatnonzero(np.abs(y[:, 0] - cy) <= reach)
    xs = np.flatnonzero(np.abs(x[0, :] - cx) <= reach)
    out = np.zeros((y.shape[0], x.shape[1]), np.float32)
    if len(ys) == 0 or len(xs) == 0:
        return out
    yy, xx = y[ys[0]:ys[-1] + 1], x[:, xs[0]:xs[-1] + 1]
    dy, dx = yy - cy, xx - cx
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = ca * dx + sa * dy, (-sa * dx + ca * dy) * stretch
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    rad = np.ones_like(theta)
    for k, (amp, phase) in enumerate(harmonics, start=2):
        rad = rad + amp * np.cos(k * theta + phase)
    out[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = _sigmoid((r * np.clip(rad, 0.3, max_wobble) - rho) / max(soft, 1e-3))
    return out


def _mix(img: np.ndarray, color, mask: np.ndarray) -> np.ndarray:
    """Blend ``color`` into ``img`` (in place) where ``mask`` is on; only the mask's bounding box is touched."""
    rows = np.flatnonzero(mask.max(axis=1) > 1e-3)
    if len(rows) == 0:
        return img
    cols = np.flatnonzero(mask.max(axis=0) > 1e-3)
    if not img.flags.writeable:
        img = img.copy()
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    m = np.clip(mask[box], 0, 1)[..., None]
    img[box] = img[box] * (1 - m) + np.asarray(color, dtype=np.float32) * m
    return img


def _to_px(v: float, size: int) -> float:
    """Grid coordinate -> pixel, square images."""
    return (v + 1) * size / 2


def _gx(v: float, n: int, other: int) -> float:
    """Grid coordinate (see :func:`_grid`) -> pixel along an axis of ``n`` pixels (other axis ``other``)."""
    return v * min(n, other) / 2 + (n - 1) / 2


def _mask(h: int, w: int, lines=(), width_px: float = 1.0, blur: float = 0.0, dots=()) -> np.ndarray:
    """A [0, 1] mask of polylines and filled circles ``(cx, cy, r)`` (pixel coordinates), optionally blurred."""
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for line in lines:
        if len(line) >= 2:
            draw.line([tuple(p) for p in line], fill=255, width=max(1, int(round(width_px))), joint="curve")
    for cx, cy, r in dots:
        r = max(r, 0.6)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    if blur > 0:
        canvas = canvas.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _random_walk(rng, start, angle, steps, step_len, turn, branch_p=0.0, depth=0):
    """A curvy (optionally branching) line from ``start``; returns a list of polylines."""
    pts = [tuple(start)]
    lines = []
    x, y = start
    for _ in range(steps):
        angle += rng.normal(0, turn)
        x, y = x + step_len * math.cos(angle), y + step_len * math.sin(angle)
        pts.append((x, y))
        if depth < 2 and rng.random() < branch_p:
            lines += _random_walk(rng, (x, y), angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.0),
                                  max(2, steps // 2), step_len * 0.8, turn, branch_p * 0.5, depth + 1)
    return [pts] + lines


@dataclass
class Acquisition:
    """How one device / phone / video / atlas source records a scene."""

    gain: np.ndarray  # per-channel colour cast
    gamma: float
    light_angle: float
    light: float  # strength of a linear illumination gradient
    blur: float  # Gaussian blur radius as a fraction of the shorter side
    noise: float  # sensor noise std (0..1 scale)
    zoom: float

    @staticmethod
    def draw(rng: np.random.Generator, strength: float = 1.0) -> "Acquisition":
        s = strength
        return Acquisition(
            gain=(1 + rng.normal(0, 0.06 * s, 3)).astype(np.float32),
            gamma=float(np.exp(rng.normal(0, 0.16 * s))),
            light_angle=float(rng.uniform(0, 2 * math.pi)),
            light=float(rng.uniform(0, 0.45 * s)),
            blur=float(rng.uniform(0, 0.010 * s)),
            noise=float(rng.uniform(0.005, 0.03 * s)),
            zoom=float(np.exp(rng.normal(0, 0.10 * s))),
        )

    def jitter(self, rng: np.random.Generator, amount: float = 0.3) -> "Acquisition":
        """A nearby acquisition (same device, another shot)."""
        return Acquisition(
            gain=(self.gain * (1 + rng.normal(0, 0.03 * amount, 3))).astype(np.float32),
            gamma=self.gamma * float(np.exp(rng.normal(0, 0.05 * amount))),
            light_angle=self.light_angle + float(rng.normal(0, 0.5 * amount)),
            light=max(0.0, self.light + float(rng.normal(0, 0.08 * amount))),
            blur=max(0.0, self.blur + float(rng.normal(0, 0.003 * amount))),
            noise=max(0.002, self.noise + float(rng.normal(0, 0.005 * amount))),
            zoom=self.zoom * float(np.exp(rng.normal(0, 0.06 * amount))),
        )

    def render(self, img: np.ndarray, rng: np.random.Generator, extra_blur: float = 0.0) -> Image.Image:
        """Apply this acquisition to a float RGB scene in [0, 1] and quantise to 8 bits."""
        h, w = img.shape[:2]
        y, x = _grid(h, w)
        ramp = 1 + self.light * (math.cos(self.light_angle) * x + math.sin(self.light_angle) * y) / 2
        lin = img * (ramp[..., None] * self.gain)
        pil = Image.fromarray((np.clip(lin, 0, 1) * 255 + 0.5).astype(np.uint8))
        # gamma through a lookup table: exact enough at 8 bits and far cheaper than a float power
        lut = np.clip(np.rint(255 * (np.arange(256) / 255) ** self.gamma), 0, 255).astype(int).tolist()
        pil = pil.point(lut * 3)
        radius = (self.blur + extra_blur) * min(h, w)
        if radius > 0.3:
            pil = pil.filter(ImageFilter.GaussianBlur(radius))
        noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(self.noise * 255)
        out = np.asarray(pil, dtype=np.float32) + noise + np.float32(0.5)
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _split_counts(total: int, shares) -> list[int]:
    shares = np.asarray(shares, dtype=float)
    return largest_remainder(shares / shares.sum() * total, total).tolist()


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **({"format": "PNG", "compress_level": 1} if path.suffix == ".png" else {"quality": 90}))


def _resize(arr: np.ndarray, w: int, h: int, method=Image.LANCZOS) -> np.ndarray:
    """Resize a mask (as floats) or an RGB image in [0, 1] (through 8 bits)."""
    if arr.ndim == 2:
        return np.asarray(Image.fromarray(arr.astype(np.float32)).resize((w, h), Image.BILINEAR), np.float32)
    img = Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((w, h), method)
    return np.asarray(img, np.float32) / 255


# --- Retina — dataset/<class folder>/<prefix>_NNN.png

# class folder -> file prefix, counts small / medium / real-size (real: 300/100/101/100)
_RETINA = {"1_normal": ("NL", (120, 300, 6)), "2_cataract": ("cataract", (40, 100, 6)),
           "2_glaucoma": ("Glaucoma", (40, 101, 6)), "3_retina_disease": ("Retina", (40, 100, 6))}
# square sides; real-size: large enough for the full profile's 224 px (the release's sizes are not recorded)
_RETINA_PX = {"small": (112,), "medium": (256,), "real-size": (512, 768)}


def _fundus(rng: np.random.Generator, size: int, cls: str, acq: Acquisition) -> Image.Image:
    """A fundus photograph; the class sets cup-to-disc ratio, haze or lesions, times a random severity (overlap)."""
    y, x = _grid(size, size)
    severity = float(rng.beta(2.0, 2.0))
    z = acq.zoom
    cy0, cx0 = rng.normal(0, 0.03, 2)
    rad = 0.9 * min(z, 1.08)
    rho = np.sqrt((y - cy0) ** 2 + (x - cx0) ** 2)
    field = _sigmoid((rad - rho) / 0.015)
    base = np.array([0.80, 0.36, 0.15], np.float32) * (1 + rng.normal(0, 0.07, 3)).astype(np.float32)
    shade = 1 - 0.5 * (rho / rad) ** 2 + 0.07 * _smooth(rng, size, size, 5)
    img = base * shade[..., None]

    side = float(rng.choice([-1.0, 1.0]))  # left / right eye
    od_y, od_x = cy0 + rng.normal(0, 0.06), cx0 + side * 0.38 * z + rng.normal(0, 0.04)
    od_r = 0.12 * z * (1 + rng.normal(0, 0.08))
    # vessels leave the optic disc in all directions
    lines = []
    for k in range(8):
        a = (k / 8) * 2 * math.pi + rng.normal(0, 0.25)
        lines += _random_walk(rng, (_to_px(od_x, size), _to_px(od_y, size)), a, 10, size * 0.05, 0.25, 0.15)
    vessels = _mask(size, size, lines, max(1.0, size * 0.012), blur=size * 0.004)
    img = img * (1 - 0.55 * vessels[..., None] * np.array([0.25, 0.85, 0.85], np.float32))
    mac_x, mac_s = od_x - side * 0.55 * z, 0.11 * z
    macula = np.exp(-((y - od_y) ** 2 + (x - mac_x) ** 2) / (2 * mac_s * mac_s))
    img = img * (1 - 0.35 * macula[..., None])

    cdr = 0.42 + 0.40 * severity if cls == "glaucoma" else rng.uniform(0.22, 0.52)
    disc = _blob(y, x, od_y, od_x, od_r, rng, 0.04, 0.012)
    img = _mix(img, [1.0, 0.78, 0.45], 0.9 * disc)
    cup = _blob(y, x, od_y + rng.normal(0, 0.01), od_x + rng.normal(0, 0.01), od_r * cdr, rng, 0.05, 0.01)
    img = _mix(img, [1.0, 0.95, 0.82], 0.9 * cup)

    n_spots = 1 + int(round(12 * severity)) if cls == "retina_disease" else int(rng.random() < 0.3)
    if n_spots:
        spot_r = rng.uniform(0.1, 0.75, n_spots) * rad
        spot_a = rng.uniform(0, 2 * math.pi, n_spots)
        centers = [(_to_px(cx0 + r * math.cos(a), size), _to_px(cy0 + r * math.sin(a), size))
                   for r, a in zip(spot_r, spot_a)]
        kinds = rng.random(n_spots) < 0.55
        ex = [(cx, cy, size * rng.uniform(0.012, 0.03)) for (cx, cy), k in zip(centers, kinds) if k]
        he = [(cx, cy, size * rng.uniform(0.015, 0.04)) for (cx, cy), k in zip(centers, kinds) if not k]
        img = _mix(img, [0.98, 0.88, 0.42], 0.85 * _mask(size, size, dots=ex, blur=size * 0.004))
        img = _mix(img, [0.38, 0.04, 0.03], 0.8 * _mask(size, size, dots=he, blur=size * 0.005))

    haze = 0.08 + 0.50 * severity if cls == "cataract" else rng.uniform(0.0, 0.2)
    img = img * (1 - haze) + haze * np.array([0.86, 0.74, 0.62], np.float32) * shade[..., None]
    img = img * field[..., None]
    extra_blur = 0.008 + 0.03 * severity if cls == "cataract" else rng.uniform(0.0, 0.012)
    return acq.render(img, rng, extra_blur=extra_blur)


def _write_retina(out: Path, seed: int, size: str) -> None:
    sides = _RETINA_PX[size]
    dev_rng = _rng(seed, 1, 10**6)
    devices = [Acquisition.draw(dev_rng) for _ in range(5)]
    files = [(folder, f"{prefix}_{i:03d}.png") for folder, (prefix, counts) in _RETINA.items()
             for i in range(1, counts[SIZES.index(size)] + 1)]
    for item, (folder, filename) in enumerate(files):
        rng = _rng(seed, 1, item)
        acq = devices[int(rng.integers(len(devices)))].jitter(rng)
        image = _fundus(rng, sides[item % len(sides)], RETINA_FOLDERS[folder], acq)
        _save(image, out / "retina_dataset-master" / "dataset" / folder / filename)


# --- PAD-UFES-20 — metadata.csv + images/imgs_part_k/PAT_<patient>_<lesion>_<n>.png

_PAD_COUNTS = {"ACK": (95, 730, 5), "BCC": (110, 845, 5), "MEL": (10, 52, 5), "NEV": (32, 244, 5),
               "SCC": (25, 192, 5), "SEK": (31, 235, 5)}  # small / medium (the real counts) / real-size
# range of width and of height; real smartphone photos span a few hundred to over a thousand pixels
_PAD_SIDE = {"small": (96, 160), "medium": (256, 448), "real-size": (300, 1100)}
_REGIONS = ["FACE", "FOREARM", "NOSE", "BACK", "CHEST", "ARM", "HAND", "NECK", "EAR", "SCALP", "THIGH",
            "LIP", "ABDOMEN", "FOOT"]
_BACKGROUNDS = ["POMERANIA", "GERMANY", "BRAZIL", "ITALY", "NETHERLANDS", "POLAND", "UNK", "PORTUGAL",
                "BRASIL", "AUSTRIA", "CZECH", "SPAIN", "ISRAEL", "NORWAY", "FRANCE"]
# lesion look per diagnosis: colour, relative radius, border irregularity
_PAD_LOOK = {"ACK": ([0.84, 0.48, 0.44], 0.34, 0.16), "BCC": ([0.90, 0.66, 0.64], 0.38, 0.10),
             "MEL": ([0.26, 0.14, 0.09], 0.40, 0.34), "NEV": ([0.46, 0.29, 0.19], 0.25, 0.05),
             "SCC": ([0.74, 0.30, 0.25], 0.44, 0.22), "SEK": ([0.52, 0.36, 0.23], 0.38, 0.10)}
_SKIN = np.array([[0.95, 0.80, 0.70], [0.92, 0.74, 0.62], [0.85, 0.64, 0.50], [0.72, 0.52, 0.38],
                  [0.56, 0.38, 0.27], [0.40, 0.27, 0.19]], np.float32)  # Fitzpatrick I..VI


def _tf(rng, p=0.5) -> str:
    return "True" if rng.random() < p else "False"


def _skin_photo(rng, w, h, diag, fitz, acq: Acquisition) -> Image.Image:
    """A smartphone photo of a skin lesion; the diagnosis sets colour, size, border and texture."""
    y, x = _grid(h, w)
    skin = _SKIN[fitz - 1] * (1 + rng.normal(0, 0.04, 3)).astype(np.float32)
    img = skin * (1 + 0.05 * _smooth(rng, h, w, 6))[..., None]
    color, rel_r, irregular = _PAD_LOOK[diag]
    strength = float(rng.uniform(0.45, 1.0))  # how typical this lesion looks
    color = np.asarray(color, np.float32) * strength + skin * (1 - strength)
    color = color * (1 + rng.normal(0, 0.08, 3)).astype(np.float32)
    r = rel_r * acq.zoom * float(np.exp(rng.normal(0, 0.2)))
    cy, cx = rng.normal(0, 0.12, 2)
    mask = _blob(y, x, cy, cx, r, rng, irregular * (0.5 + strength), soft=0.015 + 0.02 * rng.random(),
                 stretch=float(rng.uniform(0.8, 1.25)), angle=float(rng.uniform(0, math.pi)))
    img = _mix(img, color, mask)
    texture = _smooth(rng, h, w, 40)
    if diag == "ACK":  # rough scaly surface
        img = _mix(img, [0.95, 0.90, 0.85], mask * _sigmoid((texture - 0.6) * 6) * 0.7 * strength)
    elif diag == "BCC":  # pearly rim + fine vessels
        rim = mask * (1 - _blob(y, x, cy, cx, r * 0.7, rng, 0.05, 0.02))
        img = _mix(img, [0.97, 0.86, 0.84], rim * 0.5 * strength)
        lines = []
        for _ in range(4):
            lines += _random_walk(rng, (_gx(cx, w, h), _gx(cy, h, w)), rng.uniform(0, 2 * math.pi), 6,
                                  r * min(w, h) * 0.18, 0.5, 0.2)
        img = _mix(img, [0.78, 0.16, 0.18], _mask(h, w, lines, 1.0) * mask * 0.7 * strength)
    elif diag == "MEL":  # variegated: blue-grey and reddish zones
        img = _mix(img, [0.35, 0.38, 0.52], mask * _sigmoid((texture - 0.3) * 5) * 0.6 * strength)
        img = _mix(img, [0.55, 0.22, 0.18], mask * _sigmoid((-texture - 0.5) * 5) * 0.5 * strength)
    elif diag == "SCC":  # yellow crust in the middle
        crust = _blob(y, x, cy + rng.normal(0, 0.03), cx + rng.normal(0, 0.03), r * 0.55, rng, 0.3, 0.02)
        img = _mix(img, [0.82, 0.72, 0.38], crust * 0.8 * strength)
    elif diag == "SEK":  # waxy, cracked, dotted
        spread = r * min(w, h) * 0.35
        dots = [(_gx(cx, w, h) + rng.normal(0, spread), _gx(cy, h, w) + rng.normal(0, spread),
                 min(w, h) * rng.uniform(0.006, 0.014)) for _ in range(int(12 * strength) + 3)]
        img = _mix(img, [0.20, 0.12, 0.07], _mask(h, w, dots=dots) * mask * 0.8)
        img = _mix(img, [0.80, 0.70, 0.50], mask * _sigmoid((texture - 0.8) * 6) * 0.4)
    return acq.render(img, rng)


def _write_pad(out: Path, seed: int, size: str) -> None:
    remaining = {c: v[SIZES.index(size)] for c, v in _PAD_COUNTS.items()}
    total = sum(remaining.values())
    rng = _rng(seed, 2, 10**6)
    patient_ids = iter(rng.permutation(np.arange(1, int(total * 0.9) + 200)))
    lesion_ids = iter(rng.permutation(np.arange(1, int(total * 1.2) + 100)))
    image_numbers = iter(rng.permutation(np.arange(1, int(total * 1.5) + 100)))
    rows, jobs = [], []
    while sum(remaining.values()):
        pat = f"PAT_{next(patient_ids)}"
        complete = rng.random() < 0.65  # ~a third of the real rows lack the questionnaire
        fitz = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.12, 0.45, 0.28, 0.09, 0.04, 0.02]))
        patient = {
            "smoke": _tf(rng, 0.15), "drink": _tf(rng, 0.3),
            "background_father": str(rng.choice(_BACKGROUNDS)), "background_mother": str(rng.choice(_BACKGROUNDS)),
            "pesticide": _tf(rng, 0.3), "gender": str(rng.choice(["FEMALE", "MALE"])),
            "skin_cancer_history": _tf(rng, 0.4), "cancer_history": _tf(rng, 0.45),
            "has_piped_water": _tf(rng, 0.7), "has_sewage_system": _tf(rng, 0.55), "fitspatrick": f"{fitz:.1f}",
        }
        if not complete:
            patient = {k: "" for k in patient}
        acq_patient = Acquisition.draw(rng)
        for _ in range(1 + int(rng.poisson(0.35))):
            live = [c for c in remaining if remaining[c] > 0]
            if not live:
                break
            weights = np.array([remaining[c] for c in live], float)
            diag = str(rng.choice(live, p=weights / weights.sum()))
            lesion = int(next(lesion_ids))
            age = int(np.clip(rng.normal(30 if diag == "NEV" else 65, 14), 6, 94))
            d1 = rng.uniform(3, 25)
            lesion_meta = {
                "region": str(rng.choice(_REGIONS)), "age": str(age),
                "diameter_1": f"{round(d1):.1f}" if complete else "",
                "diameter_2": f"{round(d1 * rng.uniform(0.5, 1.0)):.1f}" if complete else "",
                **{k: str(rng.choice(["True", "False", "UNK"], p=[0.4, 0.5, 0.1]))
                   for k in ("itch", "grew", "hurt", "changed", "bleed", "elevation")},
                "biopsed": "True" if diag in ("BCC", "SCC", "MEL") else _tf(rng, 0.25),
            }
            for _ in range(min(remaining[diag], 1 + int(rng.random() < 0.3))):
                remaining[diag] -= 1
                img_id = f"{pat}_{lesion}_{next(image_numbers)}.png"
                rows.append({"patient_id": pat, "lesion_id": str(lesion), **patient, **lesion_meta,
                             "diagnostic": diag, "img_id": img_id})
                jobs.append((img_id, diag, fitz, acq_patient))
    pd.DataFrame(rows)[PAD_COLUMNS].to_csv(out / "metadata.csv", index=False)
    lo, hi = _PAD_SIDE[size]
    part_size = math.ceil(len(jobs) / 3)
    for k, (img_id, diag, fitz, acq_patient) in enumerate(jobs):
        irng = _rng(seed, 2, k)
        w, h = int(irng.integers(lo, hi + 1)), int(irng.integers(lo, hi + 1))
        img = _skin_photo(irng, w, h, diag, fitz, acq_patient.jitter(irng))
        _save(img, out / "images" / f"imgs_part_{k // part_size + 1}" / img_id)


# --- Endoscopic Bladder Tissue — annotations.csv + <class>/case_CCC_pt_PPP_frame_FFFF.png

_BLADDER_SHARES = {"HGC": 0.26, "LGC": 0.35, "NST": 0.22, "NTL": 0.17}
# (cases, frames, square frame sides); the release's frames are 300x300 or 350x350, one size per video
_BLADDER_SIZE = {"small": (16, 240, (128, 152)), "medium": (23, 1754, (300, 350)), "real-size": (8, 24, (300, 350))}
_NBI = np.array([[0.55, 0.25, 0.0], [0.15, 0.55, 0.15], [0.05, 0.35, 0.45]], np.float32)  # WLI -> NBI colours


def _bladder_scene(rng: np.random.Generator, w: int, h: int, cls: str) -> np.ndarray:
    """One video's scene (larger than a frame): mucosa, vessels and the tissue's appearance."""
    y, x = _grid(h, w)
    side = min(w, h)
    strength = float(rng.uniform(0.5, 1.0))
    base = np.array([0.88, 0.52, 0.42], np.float32) * (1 + rng.normal(0, 0.05, 3)).astype(np.float32)
    img = base * (1 + 0.08 * _smooth(rng, h, w, 6))[..., None]
    lines = []
    for _ in range(14):
        lines += _random_walk(rng, (rng.uniform(0, w), rng.uniform(0, h)), rng.uniform(0, 2 * math.pi),
                              12, side * 0.05, 0.35, 0.12)
    vessel_blur = side * (0.012 if cls == "NTL" else 0.003)
    vessels = _mask(h, w, lines, max(1.0, side * 0.007), blur=vessel_blur)
    img = _mix(img, [0.62, 0.10, 0.12], vessels * 0.7)
    cy, cx = rng.normal(0, 0.12, 2)  # the lesion sits near the middle: every frame's crop shows it
    if cls == "NTL":  # inflamed: patchy redness, blurred vessels, whitish spots
        red = _sigmoid((_smooth(rng, h, w, 5) + 0.2) * 4)
        img = _mix(img, [0.80, 0.18, 0.17], red * (0.45 + 0.4 * strength))
        spots = [(rng.uniform(0, w), rng.uniform(0, h), side * rng.uniform(0.01, 0.025)) for _ in range(14)]
        img = _mix(img, [0.96, 0.92, 0.86], _mask(h, w, dots=spots, blur=side * 0.004) * 0.7)
    elif cls == "LGC":  # papillary tumour: a cluster of regular, outlined fronds with a vessel core
        pts = []
        for _ in range(int(50 * strength) + 40):
            a, r = rng.uniform(0, 2 * math.pi), 0.5 * math.sqrt(rng.random())
            pts.append((_gx(cx + r * math.cos(a), w, h), _gx(cy + r * math.sin(a), h, w),
                        side * rng.uniform(0.03, 0.045)))
        img = _mix(img, [0.62, 0.22, 0.22], _mask(h, w, dots=[(a, b, r * 1.25) for a, b, r in pts], blur=1.0) * 0.9)
        img = _mix(img, [0.99, 0.78, 0.68], _mask(h, w, dots=pts, blur=side * 0.004) * 0.95)
        img = _mix(img, [0.72, 0.14, 0.15], _mask(h, w, dots=[(a, b, r * 0.3) for a, b, r in pts], blur=1.0) * 0.8)
    elif cls == "HGC":  # solid irregular mass, dark, necrotic patches, thick irregular vessels
        mass = _blob(y, x, cy, cx, rng.uniform(0.4, 0.65), rng, 0.4, 0.03)
        img = _mix(img, [0.48, 0.17, 0.21], mass * (0.65 + 0.3 * strength))
        necrosis = _sigmoid((_smooth(rng, h, w, 10) - 0.3) * 5) * mass
        img = _mix(img, [0.88, 0.82, 0.60], necrosis * 0.8)
        thick = []
        for _ in range(6):
            thick += _random_walk(rng, (_gx(cx, w, h), _gx(cy, h, w)), rng.uniform(0, 2 * math.pi), 8,
                                  side * 0.045, 0.9, 0.2)
        img = _mix(img, [0.35, 0.04, 0.07], _mask(h, w, thick, side * 0.018, blur=1.0) * mass * 0.85)
    return img


def _write_bladder(out: Path, seed: int, size: str) -> None:
    out = out / RELEASE_DIR  # the released zip's top folder
    n_cases, n_frames, sides = _BLADDER_SIZE[size]
    classes = list(_BLADDER_SHARES)
    per_class = dict(zip(classes, _split_counts(n_frames, list(_BLADDER_SHARES.values()))))
    rng = _rng(seed, 3, 10**6)
    # each class is seen in several cases (videos); a case may show two tissue types
    segments = []  # (case, class, n_frames)
    for c in classes:
        n_seg = max(2, int(round(n_cases * _BLADDER_SHARES[c] * 1.4)))
        cases = rng.choice(np.arange(1, n_cases + 1), size=min(n_seg, n_cases), replace=False)
        shares = rng.uniform(0.5, 1.5, len(cases))
        for case, k in zip(cases, _split_counts(per_class[c], shares)):
            if k:
                segments.append((int(case), c, k))
    segments.sort()
    case_order = rng.permutation(np.arange(1, n_cases + 1))
    n_val = max(1, round(0.15 * n_cases))
    split_of = {int(c): ("test" if i < n_val else "val" if i < 2 * n_val else "train")
                for i, c in enumerate(case_order)}
    case_acq = {c: Acquisition.draw(rng, 0.7) for c in range(1, n_cases + 1)}
    case_width = {c: int(rng.choice(sides)) for c in range(1, n_cases + 1)}
    rows = []
    pt_counter: dict[int, int] = {}
    for s_idx, (case, cls, k) in enumerate(segments):
        srng = _rng(seed, 3, 10**5 + s_idx)
        pt_counter[case] = pt_counter.get(case, 0) + 1
        w = h = case_width[case]
        pad = 1.3
        scene = _bladder_scene(srng, int(w * pad), int(h * pad), cls)
        nbi_share = float(srng.uniform(0.0, 0.5))
        for f in range(1, k + 1):
            frng = _rng(seed, 3, 10**5 + s_idx, f)
            zoom = float(frng.uniform(1.0, pad))
            cw, ch = int(w * pad / zoom), int(h * pad / zoom)
            ox, oy = int(frng.integers(0, int(w * pad) - cw + 1)), int(frng.integers(0, int(h * pad) - ch + 1))
            crop = scene[oy:oy + ch, ox:ox + cw]
            crop = _resize(crop, w, h, Image.BILINEAR)
            yy, xx = _grid(h, w)
            crop = crop * (1 - 0.55 * np.clip(np.sqrt(yy ** 2 + (xx * 0.85) ** 2) - 0.55, 0, 1))[..., None]
            glints = [(frng.uniform(0, w), frng.uniform(0, h), min(w, h) * frng.uniform(0.01, 0.03))
                      for _ in range(int(frng.integers(0, 5)))]
            crop = _mix(crop, [1, 1, 1], _mask(h, w, dots=glints, blur=1.5) * 0.9)
            nbi = frng.random() < nbi_share
            if nbi:
                crop = np.clip(crop @ _NBI.T * 1.15, 0, 1)
            img = case_acq[case].jitter(frng, 0.4).render(crop, frng, extra_blur=float(frng.uniform(0, 0.006)))
            name = f"case_{case:03d}_pt_{pt_counter[case]:03d}_frame_{f:04d}.png"
            _save(img, out / cls / name)
            rows.append({"HLY": name, "tissue type": cls, "imaging type": "NBI" if nbi else "WLI",
                         "sub_dataset": split_of[case]})
    pd.DataFrame(rows)[ANNOTATION_COLUMNS].to_csv(out / "annotations.csv", index=False)


# --- derm7pt — release_v0/meta/{meta,train_indexes,valid_indexes,test_indexes}.csv + images/

_DERM_SIZES = {"small": ((80, 40, 78), (192, 128)), "medium": ((413, 203, 395), (768, 512)),
               "real-size": ((10, 10, 10), (768, 512))}
_DIAG_ORDER = list(TASK_GROUPS["DIAG"])
# diagnosis -> share, lesion colour, border irregularity
_DIAG = {"BCC": (0.042, [0.80, 0.60, 0.58], 0.12), "NEV": (0.569, [0.50, 0.32, 0.20], 0.06),
         "MEL": (0.249, [0.33, 0.19, 0.13], 0.26), "MISC": (0.096, [0.66, 0.46, 0.36], 0.12),
         "SK": (0.044, [0.58, 0.43, 0.30], 0.10)}
# P(criterion class | diagnosis), rows in _DIAG_ORDER; marginals ≈ the official train split.
_COND = {
    "PN": [[0.9, 0.05, 0.05], [0.25, 0.55, 0.2], [0.3, 0.15, 0.55], [0.8, 0.1, 0.1], [0.8, 0.1, 0.1]],
    "STR": [[0.95, 0.03, 0.02], [0.75, 0.12, 0.13], [0.35, 0.05, 0.6], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]],
    "PIG": [[0.8, 0.05, 0.15], [0.7, 0.13, 0.17], [0.3, 0.05, 0.65], [0.6, 0.15, 0.25], [0.6, 0.15, 0.25]],
    "RS": [[0.7, 0.3], [0.88, 0.12], [0.5, 0.5], [0.8, 0.2], [0.8, 0.2]],
    "DaG": [[0.5, 0.2, 0.3], [0.15, 0.5, 0.35], [0.15, 0.15, 0.7], [0.5, 0.25, 0.25], [0.5, 0.2, 0.3]],
    "BWV": [[0.8, 0.2], [0.9, 0.1], [0.55, 0.45], [0.85, 0.15], [0.9, 0.1]],
    "VS": [[0.2, 0.75, 0.05], [0.93, 0.05, 0.02], [0.8, 0.08, 0.12], [0.7, 0.2, 0.1], [0.75, 0.15, 0.1]],
}
# frequency of each raw meta.csv string within its grouped class (a class not listed: its first string)
_RAW_P = {"clark nevus": 0.69, "reed or spitz nevus": 0.14, "congenital nevus": 0.04, "dermal nevus": 0.06,
          "blue nevus": 0.05, "combined nevus": 0.01, "recurrent nevus": 0.01,
          "melanoma (less than 0.76 mm)": 0.41, "melanoma (in situ)": 0.26, "melanoma (0.76 to 1.5 mm)": 0.2,
          "melanoma (more than 1.5 mm)": 0.1, "melanoma": 0.01, "melanoma metastasis": 0.02,
          "dermatofibroma": 0.21, "lentigo": 0.25, "melanosis": 0.17, "miscellaneous": 0.2, "vascular lesion": 0.17,
          "diffuse regular": 0.6, "localized regular": 0.4, "diffuse irregular": 0.6, "localized irregular": 0.4,
          "blue areas": 0.3, "white areas": 0.35, "combinations": 0.35, "arborizing": 0.3, "comma": 0.25,
          "hairpin": 0.2, "within regression": 0.15, "wreath": 0.1, "dotted": 0.6, "linear irregular": 0.4}
_SOURCES = ["Aal", "Abl", "Fbl", "Fgl", "Gal", "Ggl", "Ldl", "NEL", "Nml", "Fhl"]
_PATCH_R = 0.55  # lesion radius in patch coordinates ([-1, 1] across the patch)
_NO_CLINIC_NOTE = "no clinical image available; the dermoscopic image is given in its place"


def _raw(rng, task: str, k: int) -> str:
    """A raw meta.csv string for class ``k`` of ``task`` (an index or a class name), drawn by :data:`_RAW_P`."""
    group = TASK_GROUPS[task][k] if isinstance(k, str) else list(TASK_GROUPS[task].values())[k]
    names = [r for r in _RAW_P if r in group] or group[:1]
    p = np.asarray([_RAW_P.get(r, 1.0) for r in names])
    return str(names[int(rng.choice(len(names), p=p / p.sum()))])


def _lesion_patch(rng: np.random.Generator, P: int, diag: str, lab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The lesion through a dermoscope, RGB and alpha of ``P``×``P`` px; every criterion draws its own structure."""
    y, x = _grid(P, P)
    R = _PATCH_R
    px = functools.partial(_to_px, size=P)
    alpha = _blob(y, x, 0, 0, R, rng, _DIAG[diag][2] * (2.0 if lab["PN"] == 2 or lab["STR"] == 2 else 1.0),
                  soft=0.03, stretch=float(rng.uniform(0.85, 1.15)), angle=float(rng.uniform(0, math.pi)),
                  max_wobble=1.3)  # 0.55 * 1.3 / 0.85 < 0.9: the lesion stays inside the patch
    color = np.asarray(_DIAG[diag][1], np.float32) * (1 + rng.normal(0, 0.08, 3)).astype(np.float32)
    rho = np.sqrt(y * y + x * x) / R
    img = color * (1 + 0.12 * _smooth(rng, P, P, 6) - 0.15 * (1 - rho.clip(0, 1)))[..., None]
    img = np.broadcast_to(img, (P, P, 3)).copy()
    if diag == "BCC":  # blue-grey ovoid nests
        nests = [(px(rng.normal(0, 0.25)), px(rng.normal(0, 0.25)), P * rng.uniform(0.03, 0.06)) for _ in range(6)]
        img = _mix(img, [0.42, 0.45, 0.55], _mask(P, P, dots=nests, blur=P * 0.01) * 0.8)
    elif diag == "SK":  # milia-like cysts and comedo-like openings
        cysts = [(px(rng.normal(0, 0.3)), px(rng.normal(0, 0.3)), P * 0.012) for _ in range(10)]
        img = _mix(img, [0.95, 0.93, 0.85], _mask(P, P, dots=cysts, blur=1) * 0.8)
    elif diag == "MEL":  # variegation
        img = _mix(img, [0.18, 0.10, 0.08], _sigmoid((_smooth(rng, P, P, 5) - 0.4) * 4) * 0.6)

    if lab["PIG"] == 1:  # regular: central symmetric darker area
        img = _mix(img, color * 0.45, _blob(y, x, 0, 0, R * 0.45, rng, 0.04, 0.06) * 0.8)
    elif lab["PIG"] == 2:  # irregular: off-centre blotches
        for _ in range(int(rng.integers(1, 4))):
            a, r = rng.uniform(0, 2 * math.pi), rng.uniform(0.15, 0.35)
            img = _mix(img, [0.12, 0.07, 0.05], _blob(y, x, r * math.sin(a), r * math.cos(a),
                                                      rng.uniform(0.12, 0.22), rng, 0.4, 0.02) * 0.85)
    if lab["PN"]:
        ang = rng.uniform(0, math.pi)
        u, v = math.cos(ang) * x + math.sin(ang) * y, -math.sin(ang) * x + math.cos(ang) * y
        freq = 9.0
        if lab["PN"] == 1:  # typical: regular thin mesh fading towards the edge
            width = 0.25
            line = np.maximum(np.cos(math.pi * freq * u) > 1 - width, np.cos(math.pi * freq * v) > 1 - width)
            net = line.astype(np.float32) * np.clip(1.2 - rho, 0, 1)
        else:  # atypical: distorted, thick and broken mesh
            u = u + 0.08 * _smooth(rng, P, P, 4)
            v = v + 0.08 * _smooth(rng, P, P, 4)
            width = 0.35 + 0.25 * _smooth(rng, P, P, 5)
            line = np.maximum(np.cos(math.pi * freq * 0.8 * u) > 1 - width,
                              np.cos(math.pi * freq * 0.8 * v) > 1 - width)
            net = line.astype(np.float32) * (_smooth(rng, P, P, 6) > -0.3)
        img = _mix(img, [0.22, 0.12, 0.07], net * 0.75)
    if lab["RS"]:  # regression: white scar-like and/or blue-grey peppered areas
        area = _sigmoid((_smooth(rng, P, P, 5) - 0.4) * 5) * (rho < 0.9)
        img = _mix(img, [0.93, 0.91, 0.89] if rng.random() < 0.6 else [0.62, 0.64, 0.72], area * 0.85)
    if lab["DaG"]:
        if lab["DaG"] == 1:  # regular: similar dots, evenly spread
            angles, radii = rng.uniform(0, 2 * math.pi, 30), 0.5 * R * np.sqrt(rng.random(30))
            pts = [(px(r * math.cos(a)), px(r * math.sin(a)), P * 0.018) for a, r in zip(angles, radii)]
        else:  # irregular: varied sizes, clustered off-centre and at the periphery
            ca = rng.uniform(0, 2 * math.pi)
            pts = [(px(0.45 * math.cos(ca) + rng.normal(0, 0.12)), px(0.45 * math.sin(ca) + rng.normal(0, 0.12)),
                    P * rng.uniform(0.01, 0.04)) for _ in range(22)]
        img = _mix(img, [0.10, 0.06, 0.05], _mask(P, P, dots=pts, blur=0.8) * 0.9)
    if lab["STR"]:
        lines = []
        if lab["STR"] == 1:  # regular: evenly all around
            for a in np.linspace(0, 2 * math.pi, 20, endpoint=False) + rng.uniform(0, 0.3):
                lines.append([(px(R * 0.85 * math.cos(a)), px(R * 0.85 * math.sin(a))),
                              (px(R * 1.25 * math.cos(a)), px(R * 1.25 * math.sin(a)))])
        else:  # irregular: a few, in one sector, uneven
            a0 = rng.uniform(0, 2 * math.pi)
            for a in a0 + rng.uniform(-0.8, 0.8, int(rng.integers(4, 9))):
                L = rng.uniform(1.1, 1.45)
                lines.append([(px(R * 0.8 * math.cos(a)), px(R * 0.8 * math.sin(a))),
                              (px(R * L * math.cos(a + 0.1)), px(R * L * math.sin(a + 0.1)))])
        streaks = _mask(P, P, lines, P * (0.012 if lab["STR"] == 1 else 0.022), blur=0.8)
        img = _mix(img, [0.18, 0.10, 0.07], streaks * 0.9)
        alpha = np.maximum(alpha, streaks)
    if lab["BWV"]:  # blue-whitish veil: a hazy blue-white area
        a, r = rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.25)
        veil = _blob(y, x, r * math.sin(a), r * math.cos(a), rng.uniform(0.25, 0.4), rng, 0.3, 0.06)
        img = _mix(img, [0.55, 0.63, 0.80], veil * 0.75)
    if lab["VS"]:
        if lab["VS"] == 1:  # regular (arborizing, comma, ...): branching red lines
            vs = []
            for _ in range(3):
                vs += _random_walk(rng, (px(rng.normal(0, 0.2)), px(rng.normal(0, 0.2))), rng.uniform(0, 2 * math.pi),
                                   8, P * 0.04, 0.3, 0.3)
            vmask = _mask(P, P, vs, P * 0.01, blur=0.7)
        else:  # irregular: dotted vessels
            vmask = _mask(P, P, dots=[(px(rng.normal(0, 0.25)), px(rng.normal(0, 0.25)), P * 0.008)
                                      for _ in range(40)], blur=0.6)
        img = _mix(img, [0.80, 0.12, 0.16], vmask * alpha * 0.9)
    window = _sigmoid((0.97 - np.sqrt(x * x + y * y)) / 0.02)  # round fade: no straight patch edge can show
    return np.clip(img, 0, 1), np.clip(alpha * window, 0, 1)


def _skin_background(rng, w, h, tone) -> np.ndarray:
    return (1 + 0.06 * _smooth(rng, h, w, 5))[..., None] * np.asarray(tone, np.float32)


def _paste(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, cx: int, cy: int) -> np.ndarray:
    """Alpha-blend a patch centred at pixel (cx, cy), clipping at the borders."""
    H, W = canvas.shape[:2]
    p = rgb.shape[0]
    x0, y0 = cx - p // 2, cy - p // 2
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(W, x0 + p), min(H, y0 + p)
    if xe <= xs or ye <= ys:
        return canvas
    a = alpha[ys - y0:ye - y0, xs - x0:xe - x0, None]
    canvas[ys:ye, xs:xe] = canvas[ys:ye, xs:xe] * (1 - a) + rgb[ys - y0:ye - y0, xs - x0:xe - x0] * a
    return canvas


def _derm_pair(rng, W, H, diag, lab, acq: Acquisition) -> tuple[Image.Image, Image.Image]:
    """(clinical, dermoscopic) pictures of one lesion."""
    tone = np.array([0.93, 0.76, 0.66], np.float32) * (1 + rng.normal(0, 0.05, 3)).astype(np.float32)
    lesion_px = int(H * rng.uniform(0.62, 0.85) * acq.zoom)  # dermoscopy: the lesion fills the view
    patch, alpha = _lesion_patch(rng, max(16, int(lesion_px / _PATCH_R / 2) * 2), diag, lab)
    # dermoscopic: large, sharp, dark circular field stop
    derm = _skin_background(rng, W, H, tone)
    derm = _paste(derm, patch, alpha, W // 2 + int(rng.normal(0, W * 0.03)), H // 2 + int(rng.normal(0, H * 0.03)))
    yy, xx = _grid(H, W)
    stop = _sigmoid((1.35 - np.sqrt(yy ** 2 + xx ** 2)) / 0.05) if rng.random() < 0.7 else 1.0
    derm = derm * np.asarray(stop, np.float32)[..., None] if np.ndim(stop) else derm
    derm_img = acq.render(derm, rng)
    # clinical: the same lesion small (fine structures vanish), harsher light, more blur
    clin = _skin_background(rng, W, H, tone * np.float32(rng.uniform(0.9, 1.05)))
    small = max(8, int(patch.shape[0] * rng.uniform(0.34, 0.48)))
    clin = _paste(clin, _resize(patch, small, small), _resize(alpha, small, small),
                  W // 2 + int(rng.normal(0, W * 0.08)), H // 2 + int(rng.normal(0, H * 0.08)))
    clin_acq = acq.jitter(rng, 2.0)
    clin_acq.light = clin_acq.light + 0.3
    clin_img = clin_acq.render(clin, rng, extra_blur=float(rng.uniform(0.002, 0.006)))
    return clin_img, derm_img


def _write_derm7pt(out: Path, seed: int, size: str) -> None:
    (n_train, n_valid, n_test), (W, H) = _DERM_SIZES[size]
    n = n_train + n_valid + n_test
    rng = _rng(seed, 4, 10**6)
    n_diag = dict(zip(_DIAG_ORDER, _split_counts(n, [_DIAG[d][0] for d in _DIAG_ORDER])))
    diags = rng.permutation([d for d in _DIAG_ORDER for _ in range(n_diag[d])])
    order = rng.permutation(n)
    split_rows = dict(zip(("train", "valid", "test"), np.split(order, [n_train, n_train + n_valid])))
    if size == "real-size":  # every diagnosis twice in every official split, so no metric lacks a class
        for rows in split_rows.values():
            diags[rows] = np.resize(_DIAG_ORDER, len(rows))
    # cases whose clinical image is missing (real data: 2 train, 5 valid, 2 test)
    k_missing = {"medium": (2, 5, 2), "small": (1, 2, 1), "real-size": (1, 1, 1)}[size]
    no_clinic = {int(r) for rows, k in zip(split_rows.values(), k_missing)
                 for r in rng.choice(rows, size=k, replace=False)}
    source_acq = {s: Acquisition.draw(rng, 0.8) for s in _SOURCES}
    source_count = {s: 0 for s in _SOURCES}
    meta_rows = []
    for i in range(n):
        crng = _rng(seed, 4, i)
        diag = str(diags[i])
        d = _DIAG_ORDER.index(diag)
        lab = {t: int(crng.choice(len(p[d]), p=np.asarray(p[d]) / np.sum(p[d]))) for t, p in _COND.items()}
        raw = {TASK_COLUMNS[t]: _raw(crng, t, lab[t]) for t in _COND}
        score = 2 * (lab["PN"] == 2) + 2 * (lab["BWV"] == 1) + 2 * (lab["VS"] == 2) + (lab["STR"] == 2) \
            + (lab["PIG"] == 2) + (lab["DaG"] == 2) + (lab["RS"] == 1)
        source = _SOURCES[int(crng.integers(len(_SOURCES)))]
        source_count[source] += 2
        k = source_count[source]
        ext_c, ext_d = (".JPG" if crng.random() < 0.4 else ".jpg"), (".JPG" if crng.random() < 0.2 else ".jpg")
        clinic = f"{source}/{source.upper()}{k - 1:03d}{ext_c}"
        derm = f"{source}/{source.capitalize()}{k:03d}{ext_d}"
        clin_img, derm_img = _derm_pair(crng, W, H, diag, lab, source_acq[source].jitter(crng))
        _save(derm_img, out / "release_v0" / "images" / derm)
        if i in no_clinic:
            clinic = derm
        else:
            _save(clin_img, out / "release_v0" / "images" / clinic)
        meta_rows.append({
            "case_num": str(i + 1),
            "diagnosis": _raw(crng, "DIAG", diag),
            "seven_point_score": str(int(score)),
            **raw,
            "level_of_diagnostic_difficulty": str(crng.choice(["low", "medium", "high"], p=[0.45, 0.35, 0.2])),
            "elevation": str(crng.choice(["flat", "palpable", "nodular"], p=[0.45, 0.45, 0.1])),
            "location": str(crng.choice(["back", "lower limbs", "abdomen", "upper limbs", "chest", "head neck",
                                          "acral", "buttocks", "genital areas"])),
            "sex": str(crng.choice(["female", "male"])),
            "management": ("excision" if diag in ("MEL", "BCC") or crng.random() < 0.5
                           else str(crng.choice(["clinical follow up", "no further examination"]))),
            "clinic": clinic,
            "derm": derm,
            "case_id": "",
            "notes": _NO_CLINIC_NOTE if i in no_clinic else "",
        })
    meta_dir = out / "release_v0" / "meta"
    meta_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(meta_rows)[META_COLUMNS].to_csv(meta_dir / "meta.csv", index=False)
    for split, filename in SPLIT_FILES.items():
        # the official files are unsorted; ours are shuffled too
        pd.DataFrame({"indexes": rng.permutation(split_rows[split])}).to_csv(meta_dir / filename, index=False)


# --- entry point

_WRITERS = {"retina": _write_retina, "pad-ufes-20": _write_pad, "bladder-tissue": _write_bladder,
            "derm7pt": _write_derm7pt}
SYNTH_NAMES = tuple(_WRITERS)


def synthesize(name: str, out_dir: str | os.PathLike, seed: int = 0, size: str = "small") -> Path:
    """Write a synthetic ``name`` dataset (``size``: see :data:`SIZES`) into ``out_dir``, which must be new, empty
    or an earlier stand-in (the very same one is kept as is); return ``out_dir``."""
    if name not in _WRITERS:
        raise DataError(f"unknown dataset {name!r} for synth; expected one of {list(SYNTH_NAMES)}.")
    if size not in SIZES:
        raise DataError(f"unknown synth size {size!r}; expected one of {list(SIZES)}.")
    if int(seed) < 0:
        raise DataError(f"synth seed must be >= 0, got {seed}.")
    out = Path(out_dir).expanduser().resolve()
    wanted = {"dataset": name, "seed": int(seed), "size": size, "synth_version": SYNTH_VERSION}
    marker_path = out / MARKER_NAME
    if out.exists():
        if not out.is_dir():
            raise DataError(f"synth: {out} is a file; expected a folder to write the {name} stand-in into.")
        if marker_path.is_file():
            with contextlib.suppress(OSError, ValueError):
                if json.loads(marker_path.read_text()) == wanted:
                    return out
        elif any(out.iterdir()):
            raise DataError(f"synth: {out} is not empty and was not written by `medlib data synth`; refusing to "
                            f"overwrite it. Choose an empty or new --out folder.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent))
    try:
        _WRITERS[name](tmp, int(seed), size)
        (tmp / MARKER_NAME).write_text(json.dumps(wanted, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        if out.exists():
            os.replace(out, trash / "old")
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a success
    return out
