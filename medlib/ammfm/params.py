"""Parameter counts of every configuration in paper B's Tables 5, 6, 7, 9 and 10, built on the meta device.

Counted as the paper does (exact to the digit): each torchvision backbone whole (its unused
ImageNet classifier included) and a FusionM4Net head per branch. The attention rows are our
design: Sec. 3.2 cannot give the paper's AAB/BAB counts (one C→C value conv at Swin's 768
channels alone exceeds its +0.58M for AFF+AAB, and its SFF/AFF deltas fit no single design),
so only AFF+AAB rounds to the paper's 33.06M and the other attention rows note their gap.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from .model import DEFAULT_STAGES, create_model

__all__ = ["PAPER_ROWS", "count_parameters", "count_config", "param_table"]

MN, ST, RN, CN = "mobilenet_v3_small", "swin_v2_t", "resnet50", "convnext_tiny"


# (table, label, clinical, dermoscopy, fusion, the paper's count in M or None); None = no such branch.
# Rows are ours to build; other methods in Table 5 (Incep-com, FM-FS, ...) are not.
PAPER_ROWS: tuple[tuple, ...] = (
    ("5", "AMMMF (MN clinical + ST dermoscopy, AAB)", MN, ST, "aab", 33.06),
    ("6", "Baseline: SFF (ST + ST), concatenation", ST, ST, "concat", 58.49),
    ("6", "AFF (MN + ST), concatenation", MN, ST, "concat", 32.48),
    ("6", "AFF (MN + ST) + AAB", MN, ST, "aab", 33.06),
    ("7", "Single-modal: dermoscopy ST", None, ST, "concat", 28.82),
    ("7", "Single-modal: clinical ST", ST, None, "concat", 28.82),
    ("7", "Single-modal: dermoscopy MN", None, MN, "concat", 2.91),
    ("7", "Single-modal: clinical MN", MN, None, "concat", 2.91),
    ("7", "Baseline: ST + ST, concatenation", ST, ST, "concat", 58.49),
    ("7", "Baseline: MN + MN, concatenation", MN, MN, "concat", 6.48),
    ("7", "AMMMF: clinical ST, dermoscopy MN (AAB)", ST, MN, "aab", 32.62),
    ("7", "AMMMF: clinical MN, dermoscopy ST (AAB)", MN, ST, "aab", 33.06),
    ("9", "SFF + CAT", ST, ST, "concat", 58.49),
    ("9", "SFF + BAB", ST, ST, "bab", 60.45),
    ("9", "SFF + AAB", ST, ST, "aab", 59.09),
    ("9", "AFF + CAT", MN, ST, "concat", 32.48),
    ("9", "AFF + BAB", MN, ST, "bab", 33.88),
    ("9", "AFF + AAB", MN, ST, "aab", 33.06),
    ("10", "ResNet-50: dermoscopy", None, RN, "concat", 26.68),
    ("10", "ResNet-50: clinical", RN, None, "concat", 26.68),
    ("10", "ResNet-50: baseline (two ResNet-50, CAT)", RN, RN, "concat", None),
    ("10", "ResNet-50: AMMMF (MN + ResNet-50, AAB)", MN, RN, "aab", None),
    ("10", "ConvNeXt-T: dermoscopy", None, CN, "concat", 29.05),
    ("10", "ConvNeXt-T: clinical", CN, None, "concat", 29.05),
    ("10", "ConvNeXt-T: baseline (two ConvNeXt-T, CAT)", CN, CN, "concat", None),
    ("10", "ConvNeXt-T: AMMMF (MN + ConvNeXt-T, AAB)", MN, CN, "aab", None),
    ("10", "ST: dermoscopy", None, ST, "concat", 28.82),
    ("10", "ST: clinical", ST, None, "concat", 28.82),
    ("10", "ST: baseline (two ST, CAT)", ST, ST, "concat", None),
    ("10", "ST: AMMMF (MN + ST, AAB)", MN, ST, "aab", None),
)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (shared ones once), the way the paper's "Params" column counts."""
    return sum(p.numel() for p in model.parameters())


@lru_cache(maxsize=None)
def count_config(clinical: str | None, dermoscopy: str | None, fusion: str = "concat",
                 stages: tuple[int, ...] = DEFAULT_STAGES) -> int:
    """Parameters of the full-size model of one configuration, built on the meta device."""
    with torch.device("meta"):
        kwargs = {"stages": stages} if clinical and dermoscopy else {}
        model = create_model(clinical, dermoscopy, fusion, size="full", pretrained=False, **kwargs)
    return count_parameters(model)


def param_table(stages: tuple[int, ...] = DEFAULT_STAGES) -> list[dict]:
    """Per :data:`PAPER_ROWS` entry: the row, ``ours`` (exact), ``ours_m`` (M, 2 decimals), ``match``, ``note``."""
    rows = []
    for table, label, clinical, dermoscopy, fusion, paper_m in PAPER_ROWS:
        ours = count_config(clinical, dermoscopy, fusion, tuple(stages))
        ours_m = round(ours / 1e6, 2)
        match = None if paper_m is None else ours_m == paper_m
        if paper_m is None:
            note = "the paper prints no count for this row"
        elif match:
            note = "matches the paper"
        elif fusion != "concat":
            note = (f"differs by {ours_m - paper_m:+.2f}M: attention block design is ours "
                    "(Sec. 3.2 does not determine the paper's count)")
        else:
            note = f"differs by {ours_m - paper_m:+.2f}M"
        rows.append({"table": table, "label": label, "clinical": clinical, "dermoscopy": dermoscopy, "fusion": fusion,
                     "paper_m": paper_m, "ours": ours, "ours_m": ours_m, "match": match, "note": note})
    return rows
