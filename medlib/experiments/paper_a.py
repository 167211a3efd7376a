"""Paper A's experiments (Tian et al. 2024, §4): Tables 1–3, Figure 2, the λ sweep, BN ablation.

Reading the tables. Each of Tables 1–3 has one row per part index 1–4. "Base Model" is the
model fine-tuned on part *i*. The merged columns (Params Mean, Data Vector, Random Vector)
also differ from row to row, which only fits if the one-epoch restoration of §3.5/§4.1 was
run on part *i*'s data; "Full Training" is a single value. :func:`table` produces the rows
the same way and adds one more, ``all sites``, restored on every site's data — what §4.1's
text ("trained the ensemble model on the four datasets for one epoch") describes.

Everything trained here is cached under ``$MEDLIB_HOME/artifacts/paper_a`` by a hash of its
configuration, so the notebooks of Part A share one set of trained models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from medlib.bn import restore_batchnorm, running_variances
from medlib.data.augment import TensorImageDataset, eval_transform, train_transform
from medlib.experiments.data import SiteData, prepare_sites
from medlib.io import atomic_write_text
from medlib.models import Classifier, create_backbone, load_classifier, save_classifier
from medlib.paths import artifacts_dir, cache_dir, results_dir
from medlib.pretrain import pretrained_backbone
from medlib.profiles import Profile, get_profile
from medlib.runtime import provenance, seed_everything, select_device
from medlib.train import TrainConfig, class_weights_from_labels, fit, make_loader, predict
from medlib.vectors import DataVector, merge

__all__ = [
    "pretrained_classifier", "PAPER_TABLES", "COLUMNS", "Trained", "train_sites", "table", "run_table",
    "paper_table", "lambda_sweep", "layer_cosines", "bn_ablation",
]

COLUMNS = ("Params Mean", "Data Vector", "Random Vector", "Base Model", "Full Training")
_MERGED = {"Params Mean": "params_mean", "Data Vector": "data_vector", "Random Vector": "random_vector"}

# Accuracy (%) as printed in Tian et al. 2024, Tables 1–3 — quoted for comparison, not computed.
PAPER_TABLES = {
    "retina": {"table": 1, "full": 73.48, "rows": [
        (51.38, 70.71, 30.14, 57.45), (49.72, 69.61, 15.48, 60.77),
        (50.83, 72.37, 28.90, 65.19), (53.03, 71.82, 39.92, 64.64)]},
    "bladder-tissue": {"table": 2, "full": 63.49, "rows": [
        (62.43, 65.07, 20.10, 57.67), (60.31, 68.25, 13.22, 60.31),
        (60.84, 66.67, 28.04, 58.73), (61.37, 65.07, 27.51, 54.49)]},
    "pad-ufes-20": {"table": 3, "full": 68.36, "rows": [
        (58.59, 67.57, 31.25, 63.28), (60.93, 66.01, 5.85, 64.45),
        (57.42, 66.40, 10.54, 67.57), (60.93, 66.79, 21.48, 63.67)]},
}


def paper_table(dataset: str) -> pd.DataFrame:
    """The paper's Table for ``dataset`` in our layout (accuracy, %)."""
    spec = PAPER_TABLES[dataset]
    df = pd.DataFrame(spec["rows"], columns=COLUMNS[:4], index=[str(i) for i in range(1, 5)])
    df["Full Training"] = [spec["full"]] + [np.nan] * 3
    df.index.name = "part"
    return df


# ----------------------------------------------------------------------------- training


@dataclass
class Trained:
    """Everything one seed of one dataset needs: θ_pre, the four site models, full training."""

    dataset: str
    profile: Profile
    seed: int
    data: SiteData
    pretrained: Classifier
    sites: list[Classifier]
    full: Classifier
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.data.classes)

    def loader(self, indices, *, train: bool, seed: int | None = None):
        P = self.profile.paper_a
        transform = train_transform() if train else eval_transform()
        ds = TensorImageDataset(self.data.images, self.data.labels, transform, indices=indices)
        return make_loader(ds, P.batch_size, shuffle=train, seed=self.seed if seed is None else seed,
                           num_workers=self.profile.num_workers, device=select_device())

    def site_loaders(self, train: bool = True) -> list:
        return [self.loader(idx, train=train, seed=self.seed + k) for k, idx in enumerate(self.data.partition.sites)]

    @property
    def test_loader(self):
        return self.loader(self.data.partition.test, train=False)

    def accuracy(self, model) -> float:
        """Test accuracy in percent, as in the paper's tables.

        A model whose BatchNorm state is broken can output NaN; those images count as wrong
        (sklearn's metrics would refuse the whole prediction).
        """
        probs, labels = predict(model, self.test_loader, select_device())
        ok = np.isfinite(probs).all(axis=1)
        return 100.0 * float(np.mean(ok & (probs.argmax(axis=1) == labels)))


def pretrained_classifier(P: Profile, n_classes: int, seed: int, pretrained_path=None) -> Classifier:
    """θ_pre with a new ``n_classes`` head, identical for every site given the seed (§3.1, §4.1).

    One shared θ_pre for every site, including the new head's initialisation: the paper's
    hospitals start from "the same pre-trained weights", and averaging heads that started
    from different random draws would average unrelated directions.
    """
    if pretrained_path is not None:
        backbone = create_backbone(P.paper_a.arch, pretrained_path=pretrained_path)
    else:
        backbone = pretrained_backbone(P.paper_a, cache_dir())
    torch.manual_seed(seed)
    return Classifier(backbone, n_classes, arch=P.paper_a.arch).eval()


def _key(**parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _finetune(tr: Trained, indices: np.ndarray, role: str) -> tuple[Classifier, pd.DataFrame]:
    """Fine-tune θ_pre on ``indices`` (a site, or all of them); cached by configuration."""
    P = tr.profile.paper_a
    key = _key(dataset=tr.dataset, n_items=len(tr.data.labels), indices=indices.tolist(),
               paper_a=dataclasses.asdict(P), seed=tr.seed, data=tr.profile.data_source)
    path = artifacts_dir() / "paper_a" / f"{tr.dataset}-{role}-{key}.safetensors"
    if path.is_file():
        model, meta = load_classifier(path)
        return model.eval(), pd.DataFrame(meta["history"])
    labels = tr.data.labels[indices]
    cfg = TrainConfig(lr=P.lr, epochs=P.epochs, batch_size=P.batch_size, seed=tr.seed,
                      class_weights=class_weights_from_labels(labels, tr.n_classes), log_every=0)
    model = _clone(tr.pretrained)
    seed_everything(tr.seed)
    t0 = time.perf_counter()
    history = fit(model, tr.loader(indices, train=True), cfg, val_loader=tr.test_loader,
                  checkpoint_path=path.with_suffix(".ckpt"), resume=True)
    frame = history.to_frame()
    last = frame.iloc[-1]
    print(f"  {tr.dataset} {role:>6}: {len(indices):4d} images, {P.epochs} epochs, "
          f"train loss {last.get('train_loss', float('nan')):.3f}, "
          f"test acc {100 * last.get('val_accuracy', float('nan')):.1f}% ({time.perf_counter() - t0:.1f} s)", flush=True)
    save_classifier(path, model.cpu(), {"history": frame.to_dict("records"), "role": role,
                                        "dataset": tr.dataset, "profile": tr.profile.name, "seed": tr.seed})
    path.with_suffix(".ckpt").unlink(missing_ok=True)
    return model.eval(), frame


def _clone(model: Classifier) -> Classifier:
    import copy

    return copy.deepcopy(model)


def train_sites(dataset: str, profile: Profile | str = "auto", seed: int = 0) -> Trained:
    """θ_pre, four site models and the full-training model for ``dataset`` (§3.1, §4.1)."""
    P = get_profile(profile)
    data = prepare_sites(dataset, P, seed)
    pre = pretrained_classifier(P, len(data.classes), seed)
    tr = Trained(dataset, P, seed, data, pre, [], pre)
    print(f"[{dataset}] seed {seed}: fine-tuning {P.paper_a.arch} on {P.paper_a.n_sites} sites "
          f"and on all of them ({P.describe()})", flush=True)
    for k, idx in enumerate(data.partition.sites, 1):
        model, hist = _finetune(tr, idx, f"site{k}")
        tr.sites.append(model)
        tr.histories[f"site {k}"] = hist
    tr.full, tr.histories["full"] = _finetune(tr, data.partition.train, "full")
    return tr


# ----------------------------------------------------------------------------- tables


def _restored(tr: Trained, model, loaders, method: str):
    P = tr.profile.paper_a
    labels = tr.data.labels[tr.data.partition.train]
    return restore_batchnorm(model, loaders, method, device=select_device(), lr=P.lr, seed=tr.seed,
                             class_weights=class_weights_from_labels(labels, tr.n_classes))


def table(tr: Trained, restore: str = "finetune_epoch") -> pd.DataFrame:
    """One seed of Table 1/2/3: rows = part index (restoration on that part) + ``all sites``."""
    lam = tr.profile.paper_a.lam
    merged = {col: merge(tr.pretrained, tr.sites, method, lam=lam, seed=tr.seed) for col, method in _MERGED.items()}
    loaders = tr.site_loaders(train=True)
    rows = {}
    for i, loader in enumerate(loaders, 1):
        row = {col: tr.accuracy(_restored(tr, m, [loader], restore)) for col, m in merged.items()}
        row["Base Model"] = tr.accuracy(tr.sites[i - 1])
        rows[str(i)] = row
    rows["all sites"] = {col: tr.accuracy(_restored(tr, m, loaders, restore)) for col, m in merged.items()}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df["Full Training"] = np.nan
    df.loc["1", "Full Training"] = tr.accuracy(tr.full)
    df.index.name = "part"
    return df[list(COLUMNS)]


@dataclass
class TableResult:
    dataset: str
    profile: str
    seeds: list[int]
    per_seed: dict[int, pd.DataFrame]
    provenance: dict

    @property
    def mean(self) -> pd.DataFrame:
        return pd.concat(self.per_seed.values()).groupby(level=0, sort=False).mean()

    @property
    def std(self) -> pd.DataFrame:
        frames = list(self.per_seed.values())
        if len(frames) < 2:
            return self.mean * np.nan
        return pd.concat(frames).groupby(level=0, sort=False).std(ddof=1)

    def formatted(self) -> pd.DataFrame:
        """``mean ± std`` strings (or the single value for one seed), '' where the paper has none."""
        mean, std = self.mean, self.std
        out = mean.copy().astype(object)
        for r in mean.index:
            for c in mean.columns:
                m, s = mean.loc[r, c], std.loc[r, c]
                out.loc[r, c] = "" if np.isnan(m) else (f"{m:.1f}" if np.isnan(s) else f"{m:.1f} ± {s:.1f}")
        return out

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset, "profile": self.profile, "seeds": self.seeds,
            "columns": list(COLUMNS),
            "per_seed": {str(s): json.loads(df.to_json(orient="index")) for s, df in self.per_seed.items()},
            "mean": json.loads(self.mean.to_json(orient="index")),
            "std": json.loads(self.std.to_json(orient="index")),
            "paper": json.loads(paper_table(self.dataset).to_json(orient="index")),
            "provenance": self.provenance,
        }


def run_table(dataset: str, profile: Profile | str = "auto", seeds=None, restore: str = "finetune_epoch") -> TableResult:
    """The whole Table for ``dataset`` over ``seeds``; writes ``results/paper_a/<dataset>-<profile>.json``."""
    P = get_profile(profile)
    seeds = list(P.seeds if seeds is None else seeds)
    per_seed = {s: table(train_sites(dataset, P, s), restore) for s in seeds}
    result = TableResult(dataset, P.name, seeds, per_seed, provenance(P, seeds))
    path = results_dir() / "paper_a" / f"{dataset}-{P.name}.json"
    atomic_write_text(path, json.dumps(result.to_json(), indent=1, allow_nan=True) + "\n")
    print(f"[{dataset}] table written to {path.name}", flush=True)
    return result


# ----------------------------------------------------------------------------- analyses


def lambda_sweep(tr: Trained, lams=None, restore: str = "recompute_stats") -> pd.DataFrame:
    """Test accuracy of θ_pre + λ Σ τ_i over ``lams``; BN statistics recomputed on all sites."""
    lams = tr.profile.paper_a.lam_grid if lams is None else lams
    loaders = tr.site_loaders(train=False)
    rows = []
    for lam in lams:
        model = merge(tr.pretrained, tr.sites, "data_vector", lam=float(lam))
        rows.append({"lambda": float(lam), "accuracy": tr.accuracy(_restored(tr, model, loaders, restore))})
    return pd.DataFrame(rows)


def layer_cosines(tr: Trained, conv_only: bool = True) -> pd.DataFrame:
    """Figure 2: per-layer cosine between each model's data vector and full training's.

    Rows follow the network's layer order; columns ``site 1..N`` and ``merged`` (the data-vector
    model, whose vector is λ Σ τ_i — cosine ignores λ). Like the paper, only convolution
    weights are compared when ``conv_only``.
    """
    def vector(model) -> DataVector:
        v = DataVector.between(tr.pretrained, model)
        return v.only(lambda k, t: t.ndim == 4) if conv_only else v

    full = vector(tr.full)
    merged_model = merge(tr.pretrained, tr.sites, "data_vector", lam=tr.profile.paper_a.lam)
    columns = {f"site {k}": vector(m).cosine(full, per_layer=True) for k, m in enumerate(tr.sites, 1)}
    columns["merged"] = vector(merged_model).cosine(full, per_layer=True)
    df = pd.DataFrame(columns)
    df.index.name = "layer"
    return df


def bn_ablation(tr: Trained) -> pd.DataFrame:
    """§3.5 in numbers: the data-vector model under each way of handling BatchNorm state."""
    lam = tr.profile.paper_a.lam
    loaders = tr.site_loaders(train=True)
    plain = merge(tr.pretrained, tr.sites, "data_vector", lam=lam)
    through = merge(tr.pretrained, tr.sites, "data_vector", lam=lam, include_buffers=True)
    variants = {
        "buffers through the vector arithmetic, no restoration": through,
        "sites' mean buffers, no restoration": plain,
        "finetune_epoch on all sites (the paper)": _restored(tr, plain, loaders, "finetune_epoch"),
        "finetune_epoch on site 1 only": _restored(tr, plain, loaders[:1], "finetune_epoch"),
        "recompute_stats (forward passes, no labels)": _restored(tr, plain, loaders, "recompute_stats"),
        "site_stats (only statistics leave a site)": _restored(tr, plain, loaders, "site_stats"),
    }
    rows = []
    for name, model in variants.items():
        neg = int((running_variances(model) < 0).sum())
        rows.append({"BatchNorm state": name, "negative running variances": neg,
                     "test accuracy (%)": tr.accuracy(model)})
    return pd.DataFrame(rows).set_index("BatchNorm state")


def data_vectors(tr: Trained) -> dict[str, DataVector]:
    """τ_i = θ_i − θ_pre for every site (§3.2)."""
    return {f"site {k}": DataVector.between(tr.pretrained, m) for k, m in enumerate(tr.sites, 1)}


def pairwise_cosines(vectors: dict[str, DataVector]) -> pd.DataFrame:
    names = list(vectors)
    return pd.DataFrame([[vectors[a].cosine(vectors[b]) for b in names] for a in names], index=names, columns=names)


def paper_comparison(result: TableResult) -> dict:
    """Claims of §4.2 checked on this run and on the paper's own table, as counts over the rows."""
    ours, paper = result.mean.loc[["1", "2", "3", "4"]], paper_table(result.dataset)
    full_ours, full_paper = result.mean.loc["1", "Full Training"], paper.loc["1", "Full Training"]

    def claims(t, full):
        return {
            "dv_beats_pm": int((t["Data Vector"] > t["Params Mean"]).sum()),
            "dv_beats_base": int((t["Data Vector"] > t["Base Model"]).sum()),
            "dv_beats_rv": int((t["Data Vector"] > t["Random Vector"]).sum()),
            "full_beats_every_base": bool(full > t["Base Model"].max()),
            "best_dv_minus_full": float(t["Data Vector"].max() - full),
        }

    return {"ours": claims(ours, full_ours), "paper": claims(paper, full_paper)}


def side_by_side(result: "TableResult | dict") -> pd.DataFrame:
    """This run's ``mean ± std`` beside the paper's numbers, column by column (Tables 1–3 layout).

    Takes a :class:`TableResult` or its JSON form (a result file), so the results page can show
    a committed full-profile run exactly like this build's.
    """
    data = result.to_json() if isinstance(result, TableResult) else result
    mean = pd.DataFrame(data["mean"]).T.reindex(columns=list(COLUMNS))
    std = pd.DataFrame(data["std"]).T.reindex(columns=list(COLUMNS))
    paper = paper_table(data["dataset"])
    out = pd.DataFrame(index=mean.index)
    for col in COLUMNS:
        out[(col, "paper")] = [f"{paper.loc[r, col]:.2f}" if r in paper.index and pd.notna(paper.loc[r, col]) else ""
                               for r in mean.index]
        out[(col, "ours")] = ["" if pd.isna(m) else (f"{m:.1f}" if pd.isna(s) else f"{m:.1f} ± {s:.1f}")
                              for m, s in zip(mean[col], std[col])]
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index.name = "part"
    return out
