"""Device selection, seeding and provenance: what every experiment needs before it starts."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import random

import numpy as np
import torch


def select_device(prefer: str = "auto") -> torch.device:
    """``cuda`` → ``mps`` → ``cpu`` unless ``prefer`` names one explicitly."""
    if prefer and prefer != "auto":
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; on CPU also ask for deterministic kernels (CUDA keeps cuDNN autotuning)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("medlib", "torch", "torchvision", "timm", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def provenance(profile, seed: int | None = None, device: torch.device | None = None) -> dict:
    """Everything needed to say which run made a number."""
    device = device or select_device()
    dev_name = str(device)
    if device.type == "cuda":
        dev_name += f" ({torch.cuda.get_device_name(device)})"
    return {
        "profile": profile.name,
        "dry_run": profile.dry_run,  # capped steps, random weights: never a result to quote
        "data_source": profile.data_source,
        "seed": seed if seed is not None else list(profile.seeds),
        "device": dev_name,
        "versions": _versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host_cpus": os.cpu_count(),
    }

