"""Mixed precision: bfloat16 where the GPU has it (no overflow, no loss scaling), else float16 with a
gradient scaler (a T4); every other precision keeps a scaler at scale 1 for its skip-a-non-finite-step rule."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

__all__ = ["Precision", "choose_precision"]


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: autocast on or off, and in which dtype."""

    device_type: str
    enabled: bool
    dtype: torch.dtype | None = None  # None: autocast off

    def autocast(self):
        if not self.enabled:  # torch.autocast refuses device types it has no dtype for, even disabled
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def needs_scaler(self) -> bool:
        """float16 gradients overflow: only then does the loss need scaling."""
        return self.enabled and self.dtype == torch.float16

    def grad_scaler(self) -> torch.amp.GradScaler:
        """float16: a loss-scaling scaler; otherwise one at scale 1 (changes no bit) that skips non-finite steps."""
        if self.needs_scaler:
            return torch.amp.GradScaler(self.device_type)
        return torch.amp.GradScaler(self.device_type, init_scale=1.0, growth_interval=2**30)

    def __str__(self) -> str:
        return str(self.dtype).removeprefix("torch.") if self.enabled else "float32"


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        # native bfloat16 only (Ampere, 8.0+): ``is_bf16_supported()`` counts a T4's slow emulation
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return device.type == "cpu"  # CPU autocast's own default dtype


def choose_precision(device: torch.device, amp: bool | None = None, dtype: str | None = None) -> Precision:
    """The precision on ``device``: ``amp=None`` is mixed on CUDA only; ``dtype`` forces "bfloat16"/"float16"."""
    enabled = device.type == "cuda" if amp is None else bool(amp)
    if not enabled:
        return Precision(device.type, False)
    if dtype is not None:
        return Precision(device.type, True, getattr(torch, dtype))
    return Precision(device.type, True, torch.bfloat16 if _bf16_supported(device) else torch.float16)
