"""Mixed precision: bfloat16 where the GPU has it, float16 with a gradient scaler elsewhere.

bfloat16 keeps float32's exponent range, so nothing overflows and no loss scaling is needed
(A100, L4, H100). A T4 has no bfloat16: float16 autocast with :class:`torch.amp.GradScaler`,
which skips the optimizer step of any batch whose gradients overflow and lowers its scale. Every
other precision keeps a scaler at scale 1 for that skip rule alone.
"""

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
        """float16: a loss-scaling scaler. Otherwise a scaler at scale 1 that never grows (scaling
        and unscaling by 1 change no bit), kept for its rule: a step whose gradients are not finite
        is skipped, decided by torch's one multi-tensor check instead of a read in our step."""
        if self.needs_scaler:
            return torch.amp.GradScaler(self.device_type)
        return torch.amp.GradScaler(self.device_type, init_scale=1.0, growth_interval=2**30)

    def __str__(self) -> str:
        return str(self.dtype).removeprefix("torch.") if self.enabled else "float32"


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        # Native bfloat16 only (Ampere, compute capability 8.0, and newer). ``is_bf16_supported()``
        # also counts emulation, so it says yes on a T4, where bf16 is slow: there, fp16 + scaler.
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return device.type == "cpu"  # CPU autocast's own default dtype


def choose_precision(device: torch.device, amp: bool | None = None, dtype: str | None = None) -> Precision:
    """The precision of a run on ``device``; ``amp=None`` means mixed precision on CUDA only.

    ``dtype`` ("bfloat16" or "float16") forces one; by default bfloat16 where supported.
    """
    enabled = device.type == "cuda" if amp is None else bool(amp)
    if not enabled:
        return Precision(device.type, False)
    if dtype is not None:
        return Precision(device.type, True, getattr(torch, dtype))
    return Precision(device.type, True, torch.bfloat16 if _bf16_supported(device) else torch.float16)
