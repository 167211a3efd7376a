"""AAB and BAB between the clinical and dermoscopic maps (paper B, Sec. 3.2, Fig. 3, Eq. 1).

With N = H·W positions: M_c[i, j] = softmax_j(s · q_i · k_j), D' = M_c D_v + D (Eq. 1), where
q = C_q, k = C_k are 1×1 convs of the clinical map and D_v a 1×1 conv of the dermoscopic map.
Our choices where the paper is silent: s = 1/sqrt(C) (unscaled dot products at C = 96-768
saturate the softmax at init; ``scaled=False`` is the paper's s = 1); the clinical map is
projected (1×1 conv) to D's channels and resized (bilinear) to D's H×W when they differ; the
value conv starts at zero (``zero_init_value``), so a new block is the identity on D at step 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

__all__ = ["AsymmetricAttentionBlock", "BidirectionalAttentionBlock", "attend"]


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float,
           return_attention: bool = False):
    """softmax(scale · Q Kᵀ) V between NCHW maps on one H×W grid (+ the (B, N, N) map if asked)."""
    b, cv, h, w = value.shape
    q, k, v = (t.flatten(2).transpose(1, 2) for t in (query, key, value))  # (B, N, C)
    if return_attention:
        attn = torch.softmax(scale * q @ k.transpose(1, 2), dim=-1)
        out = attn @ v
    else:
        # fused kernels never materialise the N×N map (3136² per image at stride 4, 224 px)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=scale).squeeze(1)
    out = out.transpose(1, 2).reshape(b, cv, h, w)
    return (out, attn) if return_attention else out


def _conv1x1(cin: int, cout: int, zero: bool = False) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel_size=1)
    if zero:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return conv


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _check_pair(block: nn.Module, clinical: torch.Tensor, dermoscopy: torch.Tensor) -> None:
    if clinical.dim() != 4 or dermoscopy.dim() != 4:
        raise ConfigError(f"{type(block).__name__} expects two NCHW maps, got clinical {tuple(clinical.shape)} "
                          f"and dermoscopy {tuple(dermoscopy.shape)}")
    if clinical.shape[1] != block.clinical_channels or dermoscopy.shape[1] != block.channels:
        raise ConfigError(
            f"{type(block).__name__} was built for clinical {block.clinical_channels} and dermoscopy "
            f"{block.channels} channels, got {clinical.shape[1]} and {dermoscopy.shape[1]}; build it "
            "with the stage_channels of the two backbones at this stage")


class AsymmetricAttentionBlock(nn.Module):
    """AAB (Sec. 3.2, Fig. 3b, Eq. 1): clinical keys and queries, dermoscopic values; refines D only.

    ``forward(clinical, dermoscopy)`` returns D' (D's shape), with ``return_attention`` also M_c (B, N, N).
    """

    def __init__(self, channels: int, clinical_channels: int | None = None, scaled: bool = True,
                 zero_init_value: bool = True):
        super().__init__()
        self.channels = int(channels)
        self.clinical_channels = int(clinical_channels or channels)
        self.scale = self.channels ** -0.5 if scaled else 1.0
        self.project = (nn.Identity() if self.clinical_channels == self.channels
                        else _conv1x1(self.clinical_channels, self.channels))
        self.key = _conv1x1(self.channels, self.channels)
        self.query = _conv1x1(self.channels, self.channels)
        self.value = _conv1x1(self.channels, self.channels, zero=zero_init_value)

    def align(self, clinical: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Clinical map in the dermoscopic map's channels and H×W (projection, then bilinear resize)."""
        return _resize(self.project(clinical), size)

    def attention_map(self, clinical: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """M_c (B, N, N) for a dermoscopic grid of ``size`` = (H, W); rows sum to one."""
        c = self.align(clinical, size)
        q = self.query(c).flatten(2).transpose(1, 2)
        k = self.key(c).flatten(2).transpose(1, 2)
        return torch.softmax(self.scale * q @ k.transpose(1, 2), dim=-1)

    def forward(self, clinical: torch.Tensor, dermoscopy: torch.Tensor, return_attention: bool = False):
        _check_pair(self, clinical, dermoscopy)
        c = self.align(clinical, dermoscopy.shape[-2:])
        result = attend(self.query(c), self.key(c), self.value(dermoscopy), self.scale, return_attention)
        if return_attention:
            update, attn = result
            return dermoscopy + update, attn
        return dermoscopy + result

    def extra_repr(self) -> str:
        return f"channels={self.channels}, clinical_channels={self.clinical_channels}, scale={self.scale:.4g}"


class BidirectionalAttentionBlock(nn.Module):
    """BAB (Fig. 3a; co-attention after He et al., 2023): each modality refines the other.

    D ← C is exactly an AAB (``to_dermoscopy``); C ← D takes keys and queries from D and values
    from C (resized to D's grid), its update resized back and added to C. Both directions read
    the input maps. Returns ``(C', D')``, with ``return_attention`` also ``(M_c, M_d)``.
    """

    def __init__(self, channels: int, clinical_channels: int | None = None, scaled: bool = True,
                 zero_init_value: bool = True):
        super().__init__()
        self.to_dermoscopy = AsymmetricAttentionBlock(channels, clinical_channels, scaled, zero_init_value)
        self.channels = self.to_dermoscopy.channels
        self.clinical_channels = self.to_dermoscopy.clinical_channels
        self.scale = self.to_dermoscopy.scale
        self.key = _conv1x1(self.channels, self.channels)
        self.query = _conv1x1(self.channels, self.channels)
        self.value = _conv1x1(self.clinical_channels, self.clinical_channels, zero=zero_init_value)

    def forward(self, clinical: torch.Tensor, dermoscopy: torch.Tensor, return_attention: bool = False):
        _check_pair(self, clinical, dermoscopy)
        value = self.value(_resize(clinical, dermoscopy.shape[-2:]))
        result = attend(self.query(dermoscopy), self.key(dermoscopy), value, self.scale, return_attention)
        update, attn_d = result if return_attention else (result, None)
        clinical_refined = clinical + _resize(update, clinical.shape[-2:])
        if return_attention:
            dermoscopy_refined, attn_c = self.to_dermoscopy(clinical, dermoscopy, return_attention=True)
            return clinical_refined, dermoscopy_refined, (attn_c, attn_d)
        return clinical_refined, self.to_dermoscopy(clinical, dermoscopy)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, clinical_channels={self.clinical_channels}"
