"""Beyond the paper: Paper A's one-shot merges against federated learning, on friendly and unfriendly hospitals.

Everything starts from Paper A's θ_pre (:func:`medlib.experiments.paper_a.train_sites`) with
Paper A's optimiser settings, and every site spends the same local compute — the profile's
``epochs`` local epochs — whether it trains once and sends a data vector, or trains ``R`` rounds
of ``epochs / R`` epochs inside a federation (:mod:`medlib.federated`).

Two studies:

:func:`rounds_study`
    test accuracy against communication rounds R (:func:`medlib.federated.rounds_grid`) for
    FedAvg, FedProx and FedBN on the paper's equal random split; Params Mean and the data
    vector are the one-round points.
:func:`heterogeneity_study`
    every method on the paper's split and on harder ones — Dirichlet label skew (α = 100, 1,
    0.3; Hsu et al., 2019) and grouped by patient (datasets with patient ids) — with the
    federated methods at :func:`federated_rounds` rounds.

The test set and the union of the sites are the same for every partition (the sites are a
re-partition of the paper's training pool), so Full Training is one model and one line.

Every model built by averaging — Params Mean, Data Vector, TIES, DARE, FedAvg, FedProx — gets the
same BatchNorm restoration (:data:`RESTORE`: statistics recomputed by forward passes on all
sites' un-augmented images, no labels, no weight change). FedBN needs none: its BN state is each
site's own, and its accuracy is the mean over the sites' models (see :mod:`medlib.federated`).
Base Model is the mean test accuracy of the four site models.

Trained models are cached under ``$MEDLIB_HOME/artifacts/beyond`` (site models of the paper's
split are Paper A's own, shared with Part A's pages); study tables under ``results/beyond``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medlib.bn import restore_batchnorm
from medlib.errors import MedlibError
from medlib.experiments.data import SiteData
# from the defining module, not the package: the package imports its plan, which imports medlib.estimates,
# and medlib.estimates counts this chapter
from medlib.experiments.paper_a.runs import Trained, artifact_key, train_sites
from medlib.federated import STRATEGIES, FederatedSite, rounds_grid, run_federated
from medlib.io import atomic_write_text
from medlib.models import load_classifier, save_classifier
from medlib.paths import artifacts_dir, results_dir
from medlib.profiles import Profile
from medlib.runtime import seed_everything
from medlib.train import TrainConfig, class_weights_from_labels, fit
from medlib.vectors import merge

__all__ = [
    "PARTITIONS", "ONE_SHOT", "FEDERATED", "METHODS", "RESTORE", "FEDPROX_MU", "TIES_DENSITY", "TIES_LAM",
    "DARE_DROP", "Hospitals", "hospitals", "federated_rounds", "partitions_for", "one_shot_accuracies",
    "federated_accuracy", "rounds_study", "heterogeneity_study", "label_skew", "book_plan", "site_epochs",
    "cost_estimate", "summary",
]

# name → (partition method, Dirichlet α)
PARTITIONS = {
    "equal (paper)": ("equal", None),
    "Dirichlet α=100": ("dirichlet", 100.0),
    "Dirichlet α=1": ("dirichlet", 1.0),
    "Dirichlet α=0.3": ("dirichlet", 0.3),
    "grouped by patient": ("grouped", None),
}
ONE_SHOT = ("Base Model", "Params Mean", "Data Vector", "TIES", "DARE")
FEDERATED = {"fedavg": "FedAvg", "fedprox": "FedProx", "fedbn": "FedBN"}
METHODS = ONE_SHOT + tuple(FEDERATED.values())
RESTORE = "recompute_stats"
FEDPROX_MU = 0.01  # within the range Li et al. (2020) tune over (0.001–1)
TIES_DENSITY, TIES_LAM = 0.2, 1.0  # Yadav et al. (2023): top 20% kept, λ = 1
DARE_DROP = 0.9  # Yu et al. (2024); then summed with Paper A's λ like the data vector


@dataclass
class Hospitals:
    """One partition of one dataset: Paper A's :class:`Trained` with the sites of that partition."""

    partition: str
    trained: Trained  # θ_pre, site models (of this partition), full training, loaders, accuracy

    @property
    def profile(self) -> Profile:
        return self.trained.profile

    def federated_sites(self) -> list[FederatedSite]:
        tr = self.trained
        return [FederatedSite(loader=lambda s, idx=idx: tr.loader(idx, train=True, seed=s), n_examples=len(idx),
                              class_weights=class_weights_from_labels(tr.data.labels[idx], tr.n_classes),
                              test_loader=lambda: tr.test_loader)
                for idx in tr.data.partition.sites]

    def restored(self, model):
        """``model`` with BN statistics recomputed on every site's un-augmented images (:data:`RESTORE`)."""
        tr = self.trained
        return restore_batchnorm(model, tr.site_loaders(train=False), RESTORE, device=tr.device, seed=tr.seed)


def _repartition(tr: Trained, method: str, alpha: float | None) -> SiteData:
    """The paper's training pool split again into sites by ``method``; same test set."""
    from medlib.data.partition import SitePartition, partition_sites

    data = tr.data
    pool = data.partition.train
    groups = data.dataset.groups
    inner = partition_sites(data.labels[pool], tr.profile.paper_a.n_sites, method=method, seed=tr.seed,
                            test_fraction=0.0, alpha=alpha or 0.5,
                            groups=None if groups is None else np.asarray(groups)[pool])
    part = SitePartition([pool[s] for s in inner.sites], data.partition.test, method, tr.seed, data.labels)
    return SiteData(data.dataset, data.images, data.labels, part)


def _finetune_site(tr: Trained, indices: np.ndarray):
    """θ_pre fine-tuned on ``indices`` exactly as Paper A's sites are; cached by Paper A's key."""
    P = tr.profile.paper_a
    path = artifacts_dir() / "beyond" / f"{tr.dataset}-site-{artifact_key(tr, indices)}.safetensors"
    if path.is_file():
        return load_classifier(path)[0].eval()
    cfg = TrainConfig(lr=P.lr, epochs=P.epochs, batch_size=P.batch_size, seed=tr.seed, device=tr.device,
                      class_weights=class_weights_from_labels(tr.data.labels[indices], tr.n_classes), log_every=0,
                      max_steps=tr.profile.max_steps)
    model = copy.deepcopy(tr.pretrained)
    seed_everything(tr.seed)
    fit(model, tr.loader(indices, train=True), cfg)
    save_classifier(path, model.cpu(), {"role": "site", "dataset": tr.dataset, "profile": tr.profile.label})
    return model.eval()


def partitions_for(dataset: str, profile: Profile) -> list[str]:
    """The partitions that apply to ``dataset``: grouped only where the data has patient ids."""
    from medlib.experiments.data import ensure_dataset

    has_groups = ensure_dataset(dataset, profile).groups is not None
    return [p for p in PARTITIONS if has_groups or PARTITIONS[p][0] != "grouped"]


def hospitals(dataset: str, profile: Profile, seed: int | None = None,
              partition: str = "equal (paper)") -> Hospitals:
    """θ_pre and the four site models of ``dataset`` under ``partition`` (one of :data:`PARTITIONS`)."""
    if partition not in PARTITIONS:
        raise MedlibError(f"unknown partition {partition!r}; expected one of {list(PARTITIONS)}")
    P = profile
    base = train_sites(dataset, P, P.first_seed if seed is None else seed)
    method, alpha = PARTITIONS[partition]
    if method == "equal":
        return Hospitals(partition, base)
    if method == "grouped" and base.data.dataset.groups is None:
        raise MedlibError(f"{dataset} has no patient ids, so it cannot be partitioned by patient; "
                          f"use one of {partitions_for(dataset, P)}")
    tr = copy.copy(base)
    tr.data, tr.histories, tr._digests = _repartition(base, method, alpha), {}, dict(base._digests)
    tr.sites = [_finetune_site(tr, idx) for idx in tr.data.partition.sites]
    return Hospitals(partition, tr)


def federated_rounds(profile: Profile) -> int:
    """The rounds at which the heterogeneity study runs the federations: the middle of the grid."""
    grid = rounds_grid(profile.paper_a.epochs)
    return grid[len(grid) // 2]


def one_shot_accuracies(h: Hospitals) -> dict[str, float]:
    """Test accuracy (%) of Base Model (mean over sites) and of every one-shot merge, BN restored."""
    tr, lam = h.trained, h.profile.paper_a.lam
    merged = {
        "Params Mean": merge(tr.pretrained, tr.sites, "params_mean"),
        "Data Vector": merge(tr.pretrained, tr.sites, "data_vector", lam=lam),
        "TIES": merge(tr.pretrained, tr.sites, "ties", lam=TIES_LAM, density=TIES_DENSITY),
        "DARE": merge(tr.pretrained, tr.sites, "dare", lam=lam, drop=DARE_DROP, seed=tr.seed),
    }
    out = {"Base Model": float(np.mean([tr.accuracy(m) for m in tr.sites]))}
    out.update({name: tr.accuracy(h.restored(m)) for name, m in merged.items()})
    return out


def _federated_key(h: Hospitals, strategy: str, rounds: int) -> str:
    tr = h.trained
    parts = {"sites": [artifact_key(tr, idx) for idx in tr.data.partition.sites], "strategy": strategy,
             "rounds": rounds, "mu": FEDPROX_MU if strategy == "fedprox" else None, "restore": RESTORE}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def federated_accuracy(h: Hospitals, strategy: str, rounds: int) -> dict:
    """One federation (cached): ``{"accuracy", "seconds", "sites"}``; accuracy after BN restoration."""
    tr, P = h.trained, h.profile.paper_a
    if P.epochs % rounds:
        raise MedlibError(f"{rounds} rounds do not split {P.epochs} local epochs evenly; use one of {rounds_grid(P.epochs)}")
    path = artifacts_dir() / "beyond" / f"{tr.dataset}-{strategy}-R{rounds}-{_federated_key(h, strategy, rounds)}.safetensors"
    if path.is_file():
        return load_classifier(path)[1]["outcome"]
    result = run_federated(strategy, tr.pretrained, h.federated_sites(), rounds=rounds, local_epochs=P.epochs // rounds,
                           lr=P.lr, seed=tr.seed, mu=FEDPROX_MU, device=tr.device, max_steps=h.profile.max_steps)
    if strategy == "fedbn":
        outcome = {"accuracy": result.accuracy, "sites": result.site_accuracies}
    else:
        outcome = {"accuracy": tr.accuracy(h.restored(result.model)), "sites": []}
    outcome["seconds"] = result.seconds
    print(f"  {tr.dataset} [{h.partition}] {FEDERATED[strategy]} R={rounds}: {outcome['accuracy']:.1f}% "
          f"({result.seconds:.0f} s)", flush=True)
    save_classifier(path, result.model, {"role": strategy, "dataset": tr.dataset, "profile": h.profile.label,
                                         "outcome": outcome})
    return outcome


def _save(name: str, frame: pd.DataFrame, P: Profile) -> None:
    path = results_dir() / "beyond" / f"{name}-{P.result_tag}.json"
    atomic_write_text(path, frame.reset_index().to_json(orient="records", indent=1) + "\n")


def rounds_study(dataset: str, profile: Profile, seed: int | None = None,
                 strategies=STRATEGIES, rounds=None) -> pd.DataFrame:
    """Accuracy vs rounds on the paper's split: rows (method, rounds), columns accuracy and seconds.

    ``rounds`` defaults to every R of :func:`medlib.federated.rounds_grid`.
    """
    P = profile
    h = hospitals(dataset, P, seed)
    rows = [{"method": name, "rounds": 1, "accuracy": acc, "seconds": np.nan}
            for name, acc in one_shot_accuracies(h).items() if name in ("Params Mean", "Data Vector")]
    for strategy in strategies:
        for r in rounds_grid(P.paper_a.epochs) if rounds is None else rounds:
            out = federated_accuracy(h, strategy, r)
            rows.append({"method": FEDERATED[strategy], "rounds": r, "accuracy": out["accuracy"], "seconds": out["seconds"]})
    frame = pd.DataFrame(rows)
    frame["full training"] = h.trained.accuracy(h.trained.full)
    _save(f"{dataset}-rounds", frame, P)
    return frame


def heterogeneity_study(dataset: str, profile: Profile, seed: int | None = None,
                        partitions=None) -> pd.DataFrame:
    """Every method's test accuracy (%) per partition: rows = partitions, columns = :data:`METHODS`."""
    P = profile
    partitions = partitions_for(dataset, P) if partitions is None else list(partitions)
    rounds = federated_rounds(P)
    rows = {}
    for name in partitions:
        h = hospitals(dataset, P, seed, name)
        row = one_shot_accuracies(h)
        row.update({FEDERATED[s]: federated_accuracy(h, s, rounds)["accuracy"] for s in STRATEGIES})
        rows[name] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")[list(METHODS)]
    frame.index.name = "partition"
    frame["Full Training"] = h.trained.accuracy(h.trained.full)
    _save(f"{dataset}-heterogeneity", frame, P)
    return frame


def label_skew(dataset: str, profile: Profile, seed: int | None = None, partitions=None) -> pd.Series:
    """How unlike the sites are: the mean total-variation distance of each site's class mix from the pool's."""
    P = profile
    partitions = partitions_for(dataset, P) if partitions is None else list(partitions)
    base = train_sites(dataset, P, P.first_seed if seed is None else seed)
    out = {}
    for name in partitions:
        method, alpha = PARTITIONS[name]
        part = base.data.partition if method == "equal" else _repartition(base, method, alpha).partition
        n_classes = len(base.data.classes)
        pool = np.bincount(base.data.labels[part.train], minlength=n_classes) / len(part.train)
        tv = [0.5 * np.abs(np.bincount(base.data.labels[s], minlength=n_classes) / len(s) - pool).sum()
              for s in part.sites]
        out[name] = float(np.mean(tv))
    return pd.Series(out, name="label skew (mean TV distance)")


def book_plan(profile: Profile) -> dict:
    """What the chapter runs: every dataset, partition and round count in ``full``; less in smoke.

    Smoke keeps the book build short: the Bladder stand-in (the smallest, and it has case ids, so
    the realistic grouped split is there), the paper's split, the harshest label skew and the
    grouped split, and R ∈ {1, 4} (the heterogeneity study's R, so its federations on the
    paper's split are the rounds study's own).
    """
    P = profile
    if P.name == "full" and not P.dry_run:
        return {"datasets": list(P.paper_a.datasets), "partitions": None, "rounds": None}
    if P.dry_run:  # the full profile's code paths, capped: one dataset, the paper's split
        # (the other partitions' code runs in smoke; here every model is a ResNet50 at 224 px)
        return {"datasets": ["bladder-tissue"], "partitions": ["equal (paper)"], "rounds": None}
    return {"datasets": ["bladder-tissue"], "partitions": ["equal (paper)", "Dirichlet α=0.3", "grouped by patient"],
            "rounds": (1, federated_rounds(P))}


def site_epochs(profile: Profile, n_partitions: int = len(PARTITIONS)) -> int:
    """Site-epochs both studies train for one dataset and seed (the paper's split's site models are Part A's)."""
    P = profile
    per_run = P.paper_a.n_sites * P.paper_a.epochs  # a set of site models, or one federation
    federations = len(STRATEGIES) * len(rounds_grid(P.paper_a.epochs))
    extra = (n_partitions - 1) * (1 + len(STRATEGIES))  # other partitions: site models + one federation each
    if rounds_grid(P.paper_a.epochs).count(federated_rounds(P)) == 0:
        extra += len(STRATEGIES)
    return (federations + extra) * per_run


def cost_estimate(profile: Profile, seconds_per_site_epoch: float, n_datasets: int | None = None,
                  n_seeds: int | None = None) -> dict:
    """Site-epochs of the chapter under ``profile`` and the hours they take at ``seconds_per_site_epoch``."""
    P = profile
    n_datasets = len(P.paper_a.datasets) if n_datasets is None else n_datasets
    n_seeds = len(P.seeds) if n_seeds is None else n_seeds
    count = site_epochs(P) * n_datasets * n_seeds
    return {"site_epochs": count, "hours": count * seconds_per_site_epoch / 3600.0}


def summary(rounds: pd.DataFrame, het: pd.DataFrame) -> dict:
    """The chapter's conclusion in numbers (glued into its prose)."""
    fed = rounds[rounds["method"].isin(FEDERATED.values())]
    best = fed.loc[fed["accuracy"].idxmax()]
    one_shot = rounds.loc[rounds["method"] == "Data Vector", "accuracy"].iloc[0]
    paper, hardest = het.index[0], het["Data Vector"].idxmin()
    drop = (het.loc[paper] - het.loc[hardest])[list(METHODS)]
    return {
        "best_federated": str(best["method"]), "best_federated_rounds": int(best["rounds"]),
        "best_federated_accuracy": float(best["accuracy"]), "data_vector_accuracy": float(one_shot),
        "federated_gain": float(best["accuracy"] - one_shot),
        "hardest_partition": str(hardest), "data_vector_drop": float(drop["Data Vector"]),
        "fedavg_drop": float(drop["FedAvg"]), "most_robust": str(drop.idxmin()), "least_robust": str(drop.idxmax()),
        "full_training": float(het["Full Training"].iloc[0]),
    }


# ----------------------------------------------------------------------------- figures


def plot_rounds(rounds: dict[str, pd.DataFrame], label: str):
    """Accuracy vs rounds, one panel per dataset: federations as lines, one-shot merges as R = 1 points."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rounds), figsize=(5.2 * len(rounds), 3.6), squeeze=False)
    for ax, (name, frame) in zip(axes[0], rounds.items()):
        grid = sorted(frame["rounds"].unique())
        for method in FEDERATED.values():
            part = frame[frame["method"] == method].sort_values("rounds")
            ax.plot(part["rounds"], part["accuracy"], "o-", label=method)
        for method, marker in (("Params Mean", "s"), ("Data Vector", "D")):
            point = frame[frame["method"] == method]
            ax.plot(point["rounds"], point["accuracy"], marker, ms=9, label=f"{method} (one-shot)")
        ax.axhline(frame["full training"].iloc[0], color="grey", ls="--", label="full training (pooled data)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(grid, [str(int(r)) for r in grid])
        ax.set_xlabel("communication rounds R (equal local compute)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{name} · profile {label}")
    axes[0][-1].legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_heterogeneity(het: pd.DataFrame, skew: pd.Series, title: str):
    """Every method's accuracy against the sites' label skew, one point per partition."""
    import matplotlib.pyplot as plt

    x = skew.loc[het.index]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for method in METHODS:
        ax.plot(x, het[method], "o-", label=method)
    ax.axhline(het["Full Training"].iloc[0], color="grey", ls="--", label="full training")
    ax.set_xticks(x.values, [f"{p}\n({v:.2f})" for p, v in x.items()], fontsize="x-small")
    ax.set_xlabel("partition (label skew: mean total-variation distance from the pool's class mix)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig
