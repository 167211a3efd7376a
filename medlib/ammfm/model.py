"""AMMFM and its baselines as one model family (paper B, Sec. 3, Fig. 2; Tables 6, 7, 9, 10).

* :class:`MultiModalNet` — two backbones (the *framework*: SFF when both are the same
  architecture, AFF when the clinical one is light), optional attention blocks between
  their stages (the *fusion block*: ``"concat"`` = none, ``"aab"``, ``"bab"``), and three
  heads: clinical, dermoscopy, and fusion on the concatenated pooled features.
  ``MultiModalNet()`` with its defaults is AMMFM: MobileNetV3-Small for clinical images,
  Swin V2-T for dermoscopy, AABs after stages 2 and 3.
* :class:`SingleModalNet` — one backbone and one head (Table 7's single-modal rows).
* :func:`create_model` — one entry point for all of them.

Every model is called as ``model(clinical, dermoscopy)`` and returns a dict of branch name
to a list of 8 logit tensors, the shape :func:`medlib.ammfm.loss.ammfm_loss`, the shared
trainer and :mod:`medlib.ammfm.tta` expect.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import AsymmetricAttentionBlock, BidirectionalAttentionBlock
from .backbones import create_backbone
from .errors import ConfigError
from .heads import MultiTaskHead

__all__ = ["MultiModalNet", "SingleModalNet", "create_model", "FUSIONS", "MODALITIES", "DEFAULT_STAGES", "BRANCHES"]

FUSIONS = ("concat", "aab", "bab")
MODALITIES = ("clinical", "dermoscopy")
BRANCHES = ("clinical", "dermoscopy", "fusion")

# 0-based stage indices after which a block refines the maps (strides 8 and 16). The paper
# says only "different stages"; at these two stages the AFF+AAB count is 33,060,642 ≈
# the paper's 33.06M (Table 6), and attention over 28² and 14² positions stays cheap.
DEFAULT_STAGES: tuple[int, ...] = (1, 2)


class MultiModalNet(nn.Module):
    """Two-branch fusion network (Fig. 2): backbones, optional attention blocks, three heads.

    Args:
        clinical, dermoscopy: backbone registry names (:func:`medlib.ammfm.backbones.list_backbones`).
        fusion: ``"concat"`` (no interaction before the fusion head), ``"aab"`` (Sec. 3.2)
            or ``"bab"`` (bidirectional co-attention).
        stages: 0-based stages after which a block refines the maps (ignored for concat);
            the refined maps feed the next stage, or the pooling after the last one.
        size: ``"full"`` (real architectures) or ``"tiny"`` (smoke stand-ins).
        pretrained: ImageNet weights for both backbones (downloads).
        dropout: head dropout (0.3 in FusionM4Net).
        scaled_attention, zero_init_value: see :mod:`medlib.ammfm.attention`.
    """

    def __init__(self, clinical: str = "mobilenet_v3_small", dermoscopy: str = "swin_v2_t",
                 fusion: str = "aab", stages: tuple[int, ...] | None = DEFAULT_STAGES, size: str = "full",
                 pretrained: bool = False, dropout: float = 0.3, scaled_attention: bool = True,
                 zero_init_value: bool = True):
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion={fusion!r} is not one of {FUSIONS}")
        self.clinical = create_backbone(clinical, pretrained=pretrained, size=size)
        self.dermoscopy = create_backbone(dermoscopy, pretrained=pretrained, size=size)
        self.fusion = fusion
        self.stages = () if fusion == "concat" else tuple(sorted(set(stages or ())))
        if fusion != "concat" and not self.stages:
            raise ConfigError(f"fusion={fusion!r} needs at least one stage, got stages={stages!r}")
        n = self.dermoscopy.num_stages
        bad = [s for s in self.stages if not 0 <= s < n]
        if bad:
            raise ConfigError(f"stages {bad} out of range: the backbones have stages 0..{n - 1}")
        block_cls = AsymmetricAttentionBlock if fusion == "aab" else BidirectionalAttentionBlock
        self.blocks = nn.ModuleDict({
            f"stage{s}": block_cls(self.dermoscopy.stage_channels[s], self.clinical.stage_channels[s],
                                   scaled=scaled_attention, zero_init_value=zero_init_value)
            for s in self.stages
        })
        self.heads = nn.ModuleDict({
            "clinical": MultiTaskHead(self.clinical.num_features, dropout=dropout),
            "dermoscopy": MultiTaskHead(self.dermoscopy.num_features, dropout=dropout),
            "fusion": MultiTaskHead(self.clinical.num_features + self.dermoscopy.num_features, dropout=dropout),
        })

    def forward_features(self, clinical: torch.Tensor, dermoscopy: torch.Tensor, return_attention: bool = False):
        """Pooled clinical and dermoscopic features after the interaction blocks."""
        c, d = clinical, dermoscopy
        maps = {}
        for s in range(self.dermoscopy.num_stages):
            c = self.clinical.forward_stage(s, c)
            d = self.dermoscopy.forward_stage(s, d)
            key = f"stage{s}"
            if key not in self.blocks:
                continue
            out = self.blocks[key](c, d, return_attention=return_attention)
            if self.fusion == "aab":  # refines the dermoscopic map only
                d, maps[key] = out if return_attention else (out, None)
            elif return_attention:  # bab refines both
                c, d, maps[key] = out
            else:
                c, d = out
        features = (self.clinical.pool(c), self.dermoscopy.pool(d))
        return (features, maps) if return_attention else features

    def forward(self, clinical: torch.Tensor, dermoscopy: torch.Tensor, return_attention: bool = False) -> dict:
        """``{"clinical": [8 logits], "dermoscopy": [...], "fusion": [...]}`` (+ ``"attention"`` if asked).

        ``"attention"`` maps stage names to M_c (AAB) or (M_c, M_d) (BAB), each (B, N, N).
        """
        if return_attention:
            (fc, fd), maps = self.forward_features(clinical, dermoscopy, return_attention=True)
        else:
            fc, fd = self.forward_features(clinical, dermoscopy)
        out = {
            "clinical": self.heads["clinical"](fc),
            "dermoscopy": self.heads["dermoscopy"](fd),
            "fusion": self.heads["fusion"](torch.cat([fc, fd], dim=1)),
        }
        if return_attention:
            out["attention"] = maps
        return out


class SingleModalNet(nn.Module):
    """One backbone + one head on one image modality (Table 7/10 single-modal rows).

    ``forward(clinical, dermoscopy)`` uses only the input of ``modality`` (the other may be
    ``None``) and returns ``{modality: [8 logits]}``.
    """

    def __init__(self, backbone: str = "swin_v2_t", modality: str = "dermoscopy", size: str = "full",
                 pretrained: bool = False, dropout: float = 0.3):
        super().__init__()
        if modality not in MODALITIES:
            raise ConfigError(f"modality={modality!r} is not one of {MODALITIES}")
        self.modality = modality
        self.backbone = create_backbone(backbone, pretrained=pretrained, size=size)
        self.head = MultiTaskHead(self.backbone.num_features, dropout=dropout)

    def forward(self, clinical: torch.Tensor | None = None, dermoscopy: torch.Tensor | None = None) -> dict:
        x = clinical if self.modality == "clinical" else dermoscopy
        if x is None:
            raise ConfigError(f"this single-modal model reads the {self.modality} image, which was None")
        return {self.modality: self.head(self.backbone(x))}


def create_model(clinical: str | None = "mobilenet_v3_small", dermoscopy: str | None = "swin_v2_t",
                 fusion: str = "aab", **kwargs) -> nn.Module:
    """Build any model of the paper's tables.

    ``clinical=None`` or ``dermoscopy=None`` gives a :class:`SingleModalNet` on the other
    modality (``fusion`` must then be ``"concat"``, i.e. no fusion); otherwise a
    :class:`MultiModalNet`. Extra keyword arguments go to the class (``size``,
    ``pretrained``, ``stages``, ...).
    """
    if clinical is None and dermoscopy is None:
        raise ConfigError("create_model needs a clinical or a dermoscopy backbone (both were None)")
    if clinical is None or dermoscopy is None:
        if fusion != "concat":
            raise ConfigError(f"a single-modal model has no fusion block; pass fusion='concat', not {fusion!r}")
        kwargs.pop("stages", None)
        modality = "clinical" if dermoscopy is None else "dermoscopy"
        return SingleModalNet(clinical or dermoscopy, modality, **kwargs)
    return MultiModalNet(clinical, dermoscopy, fusion=fusion, **kwargs)
