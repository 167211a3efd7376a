"""Part B beyond the tables: evaluation variants, recipe, block costs, weight surface, attention, shapes, saturation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from medlib.ammfm.model import create_model
from medlib.ammfm.params import count_parameters
from medlib.ammfm.weight_search import search_weights
from medlib.profiles import Profile

from .configs import table_configs
from .metrics import HEADLINE, branch_metrics, mean_sd, pm
from .claims import MASS_SHARE
from .paper import PAPER_ROWS_AVG, PAPER_SETTINGS
from .tables import _ammfm, write_result
from . import runs

__all__ = ["variants_table", "block_costs", "weight_surface", "attention_example", "settings_table", "branch_table",
           "tradeoff", "example_cases", "framework_shapes", "attention_logits_at_init",
           "positions_holding", "DISPLAY_SIZE"]

DISPLAY_SIZE = 256  # pixels of the images drawn in figures


def variants_table(profile: Profile, seed: int | None = None) -> pd.DataFrame:
    """AMMFM per evaluation variant: TTA vs one view, SWA vs last-epoch weights, probability vs logit weighting."""
    res = _ammfm(profile, seed)
    views = profile.paper_b.tta_views
    rows = {}  # the key is what prose picks a row by, never a position
    for key, label, variant, mode in (
            ("tables", f"SWA weights, {views}-view TTA, probability-weighted (the tables)", "swa/tta", "probability"),
            ("logit", f"SWA weights, {views}-view TTA, logit-weighted", "swa/tta", "logit"),
            ("one view", "SWA weights, one view (no TTA), probability-weighted", "swa/1", "probability"),
            ("last epoch", "last-epoch weights, one view (no TTA), probability-weighted", "last/1", "probability")):
        (auc, auc_sd), (acc, acc_sd) = (res.mean_std(k, variant, mode) for k in ("avg_auc", "avg_acc"))
        rows[label] = {"AVG AUC": pm(auc, auc_sd), "AVG ACC": pm(acc, acc_sd), "_key": key, "_auc": auc, "_acc": acc}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    write_result("variants", profile, seed, frame.drop(columns=["_key", "_auc", "_acc"]), {"AMMFM": res})
    return frame


def _fusion_label(fusion: str) -> str:
    return fusion.upper().replace("CONCAT", "CAT")


def block_costs(image_size: int = 224) -> pd.DataFrame:
    """Parameters and forward FLOPs (multiply-add = 2, one image pair) of AFF/SFF × CAT/AAB/BAB and their blocks,
    traced on the ``meta`` device by ``torch.utils.flop_counter`` (shapes only, no weights, no memory)."""
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for framework, clinical in (("AFF", "mobilenet_v3_small"), ("SFF", "swin_v2_t")):
        for fusion in ("concat", "aab", "bab"):
            with torch.device("meta"):
                model = create_model(clinical, "swin_v2_t", fusion, size="full").eval()
                x = torch.empty(1, 3, image_size, image_size)
            with FlopCounterMode(display=False) as counter:
                model(x, x)
            per_module = counter.get_flop_counts()
            block_flops = sum(sum(v.values()) for k, v in per_module.items() if k.count(".") == 2 and ".blocks." in k)
            block_params = sum(p.numel() for p in model.blocks.parameters())
            rows.append({"framework": framework, "fusion": _fusion_label(fusion),
                         "params (M)": count_parameters(model) / 1e6, "block params (M)": block_params / 1e6,
                         "GFLOPs": counter.get_total_flops() / 1e9, "block GFLOPs": block_flops / 1e9})
    return pd.DataFrame(rows).set_index(["framework", "fusion"])


def weight_surface(profile: Profile, seed: int | None = None, run: int = 0) -> dict[str, pd.DataFrame]:
    """Eq. 4's valid-split search surface for AMMFM run ``run`` per weighting mode, one row per distinct triple."""
    r = runs.train_config(table_configs(profile)["2"][0][1], profile, run, seed=seed, data=runs._data_for(profile))
    preds = r.predictions[HEADLINE[0]]["valid"]
    out = {}
    for mode in ("probability", "logit"):
        s = search_weights(preds, r.targets["valid"], n=profile.paper_b.weight_grid, mode=mode).surface
        rounded = s.assign(_k=list(zip(s.wn_D.round(6), s.wn_C.round(6))))
        out[mode] = rounded.drop_duplicates("_k").drop(columns="_k").reset_index(drop=True)
    return out


def attention_example(profile: Profile, seed: int | None = None, case: int = 0) -> dict:
    """AAB maps M_c of the trained AMMFM (run 0) for test case ``case``, with the two images (uint8 HWC): ``maps``
    {stage: (H, W, H, W)}; ``peak`` {stage: mean row maximum × N: 1 = flat, N = one-hot}; ``spread`` {stage: median
    over rows of the positions holding :data:`MASS_SHARE` of the weight}."""
    data = runs._data_for(profile)
    r = runs.train_config(table_configs(profile)["2"][0][1], profile, 0, seed=seed, data=data)
    model = runs.load_model(r)
    index = int(data.splits["test"][case])
    batch = ((data.clinical[index:index + 1], data.dermoscopy[index:index + 1]), torch.zeros(1, 8, dtype=torch.long))
    (c, d), _ = runs._eval_batch(batch, torch.device("cpu"))
    with torch.no_grad():
        attention = model(c, d, return_attention=True)["attention"]
    maps, peak, spread = {}, {}, {}
    for stage, m in attention.items():
        n = m.shape[-1]
        side = int(round(math.sqrt(n)))
        maps[stage] = m[0].reshape(side, side, side, side).numpy()
        peak[stage] = float(m[0].max(dim=-1).values.mean() * n)
        spread[stage] = float(positions_holding(m[0]).double().median())
    from medlib.data.cache import load_resized

    # for display: the whole image squashed like the model's input, at a readable resolution
    ds = data.dataset
    views = {name: load_resized(path[index], DISPLAY_SIZE, fit=runs.RESIZE_FIT).transpose(1, 2, 0)
             for name, path in (("clinical", ds.clinical_paths), ("dermoscopy", ds.derm_paths))}
    return {**views,
            "maps": maps, "peak": peak, "spread": spread, "diagnosis": data.tasks["DIAG"][int(data.labels[index, 0])],
            "index": index}


def settings_table(profile: Profile) -> pd.DataFrame:
    """§4.1's recipe (quoted) beside what this profile runs, with the backbones' weights."""
    from medlib.ammfm.backbones import weights_tag
    from medlib.ammfm.tta import TTA_VIEWS
    from medlib.data.augment import FUSION_RECIPE as R

    B = profile.paper_b
    ours = {
        "optimizer": "Adam",
        "learning rate": f"{B.lr:g}, one cosine over all {B.epochs} epochs (FusionM4Net's)",
        "batch size": str(B.batch_size),
        "epochs": str(B.epochs),
        "SWA": f"average of the last {B.swa_epochs} epochs along the same cosine (no lr jump), BN recomputed",
        "image size": f"{B.image_size} × {B.image_size}, whole image resized (no crop)",
        "augmentation": (f"FusionM4Net's: block p = {R.p_block:g}, each step p = {R.p_step:g}: flips, "
                         f"shift ±{R.shift:g}, scale ×{1 - R.scale:g}–{1 + R.scale:g}, rotate ±{R.rotate:g}°, "
                         f"quarter turns (same on both images); contrast ×(1 ± {R.contrast:g}), brightness ± "
                         f"{R.brightness:g}, gamma {R.gamma[0]:g}–{R.gamma[1]:g} (clinical image only)"),
        "test-time augmentation": f"{B.tta_views} views ({', '.join(TTA_VIEWS[:B.tta_views])}) — our choice",
        "runs for mean ± std": str(B.n_runs),
        "backbones": ("ImageNet-pretrained torchvision" if B.backbone_size == "full"
                      else "tiny torchvision stand-ins, random init"),
        "initial weights": ", ".join(sorted({weights_tag(n, B.pretrained) for n in (B.clinical, B.dermoscopy)})),
        "input scaling": "RGB, ImageNet mean/std (what the torchvision backbones were trained on) — our choice",
        "weight decay": f"{runs.training_config(B, 0).weight_decay:g} — our choice",
        "weight-search grid": f"linspace(0.05, 1, {B.weight_grid}) — our choice",
        "resize method": "PIL bicubic (low-pass when shrinking) — our choice",
        "geometric warp": ("bilinear, on both images; borders by torch's 'reflection' (OpenCV's BORDER_REFLECT: "
                           "the edge pixel repeats) — our choice"),
    }
    paper = {**PAPER_SETTINGS, "initial weights": "not stated"}
    frame = pd.DataFrame({"paper (§4.1; runs: §4.4)": paper, f"this profile ({profile.label})": ours})
    frame.index.name = "setting"
    return frame


def branch_table(profile: Profile, seed: int | None = None) -> pd.DataFrame:
    """AMMFM's three heads alone vs their weighted average (Eq. 4), mean ± std over runs (test split)."""
    res = _ammfm(profile, seed)
    rows = {}
    for branch in ("clinical", "dermoscopy", "fusion"):
        ms = [branch_metrics(r, branch) for r in res.runs]
        rows[f"{branch} head alone"] = {k: pm(*mean_sd([100 * m[k] for m in ms])) for k in ("avg_auc", "avg_acc")}
    for mode in ("probability", "logit"):
        rows[f"weighted average ({mode}-weighted)"] = {k: res.text(k, mode=mode) for k in ("avg_auc", "avg_acc")}
    return pd.DataFrame.from_dict(rows, orient="index").rename(columns={"avg_auc": "AVG AUC", "avg_acc": "AVG ACC"})


def tradeoff(profile: Profile, seed: int | None = None) -> pd.DataFrame:
    """Tables 7 and 9 as points: full-size parameters vs AVG AUC, the paper's and this run's."""
    rows = {}
    for number in ("7", "9"):
        for label, cfg in table_configs(profile)[number]:
            if cfg.name in rows:
                continue
            r = runs.run_config(cfg, profile, seed)
            if cfg.single_modal:
                kind = "single-modal, " + ("clinical" if cfg.dermoscopy is None else "dermoscopic")
            else:
                kind = "symmetric (SFF)" if cfg.clinical == cfg.dermoscopy else "asymmetric (AFF)"
            rows[cfg.name] = {"configuration": cfg.label, "kind": kind, "fusion": _fusion_label(cfg.fusion),
                              "params (M)": cfg.full_size_parameters() / 1e6,
                              "paper AVG AUC": PAPER_ROWS_AVG[number][label][0],
                              "this run AVG AUC": r.mean_std("avg_auc")[0]}
    return pd.DataFrame(list(rows.values()))


def example_cases(data, split: str = "train") -> list[int]:
    """One case per diagnosis from ``split`` (in class order), plus a clinic = derm case if any."""
    idx = np.asarray(data.splits[split])
    idx = idx[~data.dataset.clinic_is_derm[idx]]  # real pairs for the per-diagnosis examples
    _, first = np.unique(data.labels[idx, 0], return_index=True)  # each diagnosis's first case, in class order
    cases = [int(i) for i in idx[first]]
    same = np.flatnonzero(data.dataset.clinic_is_derm)
    return cases + ([int(same[0])] if len(same) else [])


def framework_shapes(profile: Profile, image_size: int | None = None,
                     size: str = "full") -> pd.DataFrame:
    """Tensor shapes through AMMFM (Fig. 2/3), one forward pass on the ``meta`` device (shapes only): one row per
    tensor, ``stage``, ``branch``, ``what``, ``shape`` (batch of 1); ``image_size``: the profile's."""
    B = profile.paper_b
    side = int(image_size or B.image_size)
    rows = []

    def add(stage, branch, what, t):
        rows.append({"stage": stage, "branch": branch, "what": what, "shape": tuple(int(x) for x in t.shape)})

    with torch.device("meta"), torch.no_grad():
        model = create_model(B.clinical, B.dermoscopy, "aab", size=size).eval()
        c = d = torch.empty(1, 3, side, side)
        add("input", "clinical", "image", c), add("input", "dermoscopy", "image", d)
        for s in range(model.dermoscopy.num_stages):
            c, d = model.clinical.forward_stage(s, c), model.dermoscopy.forward_stage(s, d)
            add(f"stage {s}", "clinical", f"{B.clinical} stage {s}", c)
            add(f"stage {s}", "dermoscopy", f"{B.dermoscopy} stage {s}", d)
            block = model.blocks[f"stage{s}"] if f"stage{s}" in model.blocks else None
            if block is None:
                continue
            aligned = block.align(c, d.shape[-2:])
            add(f"stage {s}", "AAB", "C projected (1×1 conv) to D's channels", aligned)
            add(f"stage {s}", "AAB", "Q = C_q, K = C_k", block.query(aligned))
            add(f"stage {s}", "AAB", "D_v (1×1 conv of D)", block.value(d))
            add(f"stage {s}", "AAB", "M_c = softmax(Q Kᵀ / √C)", block.attention_map(c, d.shape[-2:]))
            d = block(c, d)
            add(f"stage {s}", "AAB", "D' = M_c D_v + D", d)
        fc, fd = model.clinical.pool(c), model.dermoscopy.pool(d)
        add("pool", "clinical", "pooled features", fc), add("pool", "dermoscopy", "pooled features", fd)
        fused = torch.cat([fc, fd], dim=1)
        add("pool", "fusion", "concatenated features", fused)
        for branch, features in (("clinical", fc), ("dermoscopy", fd), ("fusion", fused)):
            add("heads", branch, "DIAG logits (1 of 8 tasks)", model.heads[branch](features)[0])
    return pd.DataFrame(rows)


def attention_logits_at_init(channels: int = 192, clinical_channels: int = 24, side: int = 28, seed: int = 0,
                             cases: int = 4, feature_std: float = 1.0) -> dict[str, np.ndarray]:
    """Largest weight of each row of M_c in a fresh AAB, with and without 1/√C (same initial weights), on random
    clinical maps of std ``feature_std`` (1: a BatchNorm'd stage's); a uniform row has max 1/N (N = side²), a one-hot
    row 1. Also ``*_positions``: per row, how many positions hold :data:`MASS_SHARE` of its weight."""
    from medlib.ammfm.attention import AsymmetricAttentionBlock

    torch.manual_seed(seed)
    scaled = AsymmetricAttentionBlock(channels, clinical_channels, scaled=True)
    unscaled = AsymmetricAttentionBlock(channels, clinical_channels, scaled=False)
    unscaled.load_state_dict(scaled.state_dict())
    clinical = feature_std * torch.randn(cases, clinical_channels, side, side,
                                         generator=torch.Generator().manual_seed(seed))
    out = {}
    with torch.no_grad():
        for name, block in (("scaled", scaled), ("unscaled", unscaled)):
            rows = block.attention_map(clinical, (side, side)).flatten(0, -2)
            out[name] = rows.max(dim=-1).values.numpy()
            out[f"{name}_positions"] = positions_holding(rows).numpy()
    return {**out, "n": side * side, "scale": scaled.scale}


def positions_holding(rows: torch.Tensor, share: float = MASS_SHARE) -> torch.Tensor:
    """Per row of attention weights (last dim sums to 1): how many of its largest weights hold ``share`` of it."""
    top = rows.sort(dim=-1, descending=True).values.cumsum(dim=-1)
    return (top < share).sum(dim=-1) + 1
