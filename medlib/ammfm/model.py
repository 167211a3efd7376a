"""AMMFM and its baselines (paper B, Sec. 3, Fig. 2; Tables 6, 7, 9, 10).

Every model is called as ``model(clinical, dermoscopy)`` and returns branch name -> list of 8
logit tensors, what :func:`medlib.ammfm.loss.ammfm_loss` and :mod:`medlib.ammfm.tta` expect.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import AsymmetricAttentionBlock, BidirectionalAttentionBlock
from .backbones import create_backbone
from .errors import ConfigError
from .tasks import NUM_CLASSES

__all__ = ["MultiTaskHead", "MultiModalNet", "SingleModalNet", "create_model", "FUSIONS", "MODALITIES",
           "DEFAULT_STAGES", "BRANCHES"]

FUSIONS = ("concat", "aab", "bab")
MODALITIES = ("clinical", "dermoscopy")
BRANCHES = ("clinical", "dermoscopy", "fusion")

# 0-based stage indices after which a block refines the maps (strides 8 and 16). The paper
# says only "different stages"; at these two stages the AFF+AAB count is 33,060,642 ≈
# the paper's 33.06M (Table 6), and attention over 28² and 14² positions stays cheap.
DEFAULT_STAGES: tuple[int, ...] = (1, 2)


class MultiTaskHead(nn.Module):
    """The FCLs of Fig. 2, FusionM4Net's head: [Linear - BatchNorm1d - Swish - Dropout] × 2, one Linear per task.

    Paper B does not spell the FCLs out; this reading reproduces its parameter counts exactly.
    """

    def __init__(self, in_features: int, num_classes: tuple[int, ...] = NUM_CLASSES,
                 hidden: tuple[int, int] = (512, 128), dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.SiLU(), nn.Dropout(dropout)]  # SiLU = Swish
            width = h
        self.trunk = nn.Sequential(*layers)
        self.classifiers = nn.ModuleList(nn.Linear(width, n) for n in num_classes)
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self.trunk(x)
        return [clf(z) for clf in self.classifiers]


class MultiModalNet(nn.Module):
    """Fig. 2: two backbones (SFF if alike, AFF if the clinical one is light), blocks, three heads.

    ``fusion``: ``"concat"`` (no block), ``"aab"`` (Sec. 3.2) or ``"bab"``, after each of ``stages``
    (0-based; the refined maps feed the next stage). The defaults are AMMFM: MobileNetV3-Small on
    clinical images, Swin V2-T on dermoscopy, AABs after stages 1 and 2.
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
        """Pooled clinical and dermoscopic features after the interaction blocks (+ the attention maps)."""
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
        """Three branches' logits; ``"attention"``: stage -> M_c (AAB) or (M_c, M_d) (BAB), each (B, N, N)."""
        result = self.forward_features(clinical, dermoscopy, return_attention)
        (fc, fd), maps = result if return_attention else (result, None)
        out = {
            "clinical": self.heads["clinical"](fc),
            "dermoscopy": self.heads["dermoscopy"](fd),
            "fusion": self.heads["fusion"](torch.cat([fc, fd], dim=1)),
        }
        if return_attention:
            out["attention"] = maps
        return out


class SingleModalNet(nn.Module):
    """One backbone + one head on ``modality`` (Table 7/10 single-modal rows); returns ``{modality: [8 logits]}``."""

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
    """Any model of the paper's tables: :class:`SingleModalNet` if a backbone is None, else :class:`MultiModalNet`."""
    if clinical is None and dermoscopy is None:
        raise ConfigError("create_model needs a clinical or a dermoscopy backbone (both were None)")
    if clinical is None or dermoscopy is None:
        if fusion != "concat":
            raise ConfigError(f"a single-modal model has no fusion block; pass fusion='concat', not {fusion!r}")
        kwargs.pop("stages", None)
        modality = "clinical" if dermoscopy is None else "dermoscopy"
        return SingleModalNet(clinical or dermoscopy, modality, **kwargs)
    return MultiModalNet(clinical, dermoscopy, fusion=fusion, **kwargs)
