"""Modality-interaction blocks between the clinical and dermoscopic branches (paper B, Sec. 3.2, Fig. 3).

:class:`AsymmetricAttentionBlock` (AAB, Fig. 3b, Eq. 1) lets the *clinical* map decide
where the dermoscopic map should look, and refines only the dermoscopic map.
:class:`BidirectionalAttentionBlock` (BAB, Fig. 3a, co-attention in the style of He et al.,
2023) does that and the reverse, refining both maps.

Attention, written out (N = H·W positions, maps reshaped to N × C):

.. math::

    M_c[i, j] = \\operatorname{softmax}_j\\big( s \\, q_i \\cdot k_j \\big), \\qquad
    D_{refined}[i] = \\sum_j M_c[i, j]\\, D_v[j] + D[i]

with :math:`q = C_q`, :math:`k = C_k` (1×1 convs of the clinical map) and :math:`D_v`
(1×1 conv of the dermoscopic map). This is Eq. 1, :math:`D_v \\cdot M_c + D`, with the
softmax normalising over the positions that are mixed. Design choices the paper leaves
open, and ours:

* **Scaling** ``s``. The paper has none (``s = 1``). With C = 96-768 channels unscaled dot
  products saturate the softmax at initialisation (near one-hot maps, vanishing
  gradients), so the default is the transformer scaling ``s = 1/sqrt(C)``; pass
  ``scaled=False`` for the paper's literal form.
* **Alignment.** Sec. 3.2 assumes both maps have the same H, W and C. In AFF they do not
  share C (MobileNetV3's 24 vs Swin's 192 channels, for example), and at unequal input
  sizes they would not share H×W either. So the clinical map first passes a 1×1 conv
  projection to the dermoscopic channel count (skipped when the counts are equal) and a
  bilinear resize to the dermoscopic map's H×W (skipped when equal). Its parameters are
  part of the block's count.
* **Initial value conv.** With ``zero_init_value=True`` (default) the value conv starts at
  zero, so a freshly inserted block is the identity on the dermoscopic map and ImageNet
  features pass unchanged at step 0 (as in ReZero/SAGAN's zero gate). Its gradient is not
  zero, so it learns from the first step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

__all__ = ["AsymmetricAttentionBlock", "BidirectionalAttentionBlock", "attend"]


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float,
           return_attention: bool = False):
    """Single-head attention between NCHW maps on the same H×W grid.

    ``query``/``key``: (B, Ck, H, W); ``value``: (B, Cv, H, W). Returns the (B, Cv, H, W)
    mixed values and, with ``return_attention``, the (B, N, N) map ``M[b, i, j]`` whose
    rows (query position i) sum to one over key positions j.
    """
    b, cv, h, w = value.shape
    q = query.flatten(2).transpose(1, 2)  # (B, N, Ck)
    k = key.flatten(2).transpose(1, 2)
    v = value.flatten(2).transpose(1, 2)  # (B, N, Cv)
    if return_attention:
        attn = torch.softmax(scale * q @ k.transpose(1, 2), dim=-1)
        out = attn @ v
    else:
        # fused kernels never materialise the N×N map (3136² per image at stride 4, 224 px)
        attn = None
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=scale).squeeze(1)
    out = out.transpose(1, 2).reshape(b, cv, h, w)
    return (out, attn) if return_attention else out


def _conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _check_pair(block: nn.Module, clinical: torch.Tensor, dermoscopy: torch.Tensor) -> None:
    if clinical.dim() != 4 or dermoscopy.dim() != 4:
        raise ConfigError(
            f"{type(block).__name__} expects two NCHW maps, got clinical {tuple(clinical.shape)} "
            f"and dermoscopy {tuple(dermoscopy.shape)}"
        )
    if clinical.shape[1] != block.clinical_channels or dermoscopy.shape[1] != block.channels:
        raise ConfigError(
            f"{type(block).__name__} was built for clinical {block.clinical_channels} and dermoscopy "
            f"{block.channels} channels, got {clinical.shape[1]} and {dermoscopy.shape[1]}; build it "
            "with the stage_channels of the two backbones at this stage"
        )


class AsymmetricAttentionBlock(nn.Module):
    """AAB (Sec. 3.2, Fig. 3b, Eq. 1): clinical keys and queries, dermoscopic values.

    Args:
        channels: C of the dermoscopic map (and of keys, queries and values).
        clinical_channels: channels of the clinical map; a 1×1 projection to ``channels``
            is added when they differ (default: equal to ``channels``, no projection).
        scaled: scale dot products by ``1/sqrt(channels)`` (paper: unscaled).
        zero_init_value: start the value conv at zero, so the block starts as identity.

    ``forward(clinical, dermoscopy)`` returns the refined dermoscopic map, the same shape
    as ``dermoscopy``; with ``return_attention=True`` also the (B, N, N) map M_c, which is
    a function of the clinical map alone.
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
        self.value = _conv1x1(self.channels, self.channels)
        if zero_init_value:
            nn.init.zeros_(self.value.weight)
            nn.init.zeros_(self.value.bias)

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

    * Dermoscopy ← clinical: exactly an :class:`AsymmetricAttentionBlock` (``to_dermoscopy``).
    * Clinical ← dermoscopy: keys and queries from the dermoscopic map (C→C 1×1 convs),
      values from the clinical map (its own channels, resized to the dermoscopic grid);
      the update is resized back to the clinical H×W and added to the clinical map.

    Both directions read the *input* maps (they run in parallel, not one after the other).
    ``forward(clinical, dermoscopy)`` returns ``(clinical_refined, dermoscopy_refined)``;
    with ``return_attention=True`` also ``(M_c, M_d)``.
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
        self.value = _conv1x1(self.clinical_channels, self.clinical_channels)
        if zero_init_value:
            nn.init.zeros_(self.value.weight)
            nn.init.zeros_(self.value.bias)

    def forward(self, clinical: torch.Tensor, dermoscopy: torch.Tensor, return_attention: bool = False):
        _check_pair(self, clinical, dermoscopy)
        grid = dermoscopy.shape[-2:]
        value = self.value(_resize(clinical, grid))
        result = attend(self.query(dermoscopy), self.key(dermoscopy), value, self.scale, return_attention)
        update, attn_d = result if return_attention else (result, None)
        clinical_refined = clinical + _resize(update, clinical.shape[-2:])
        if return_attention:
            dermoscopy_refined, attn_c = self.to_dermoscopy(clinical, dermoscopy, return_attention=True)
            return clinical_refined, dermoscopy_refined, (attn_c, attn_d)
        return clinical_refined, self.to_dermoscopy(clinical, dermoscopy)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, clinical_channels={self.clinical_channels}"
