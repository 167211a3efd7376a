"""Beyond the paper: Paper A's one-shot merges against FedAvg, FedProx and FedBN, on friendly and unfriendly hospitals.

Everything starts from Paper A's θ_pre with Paper A's optimiser, and every site spends the same local
compute (the profile's ``epochs``), trained once (a data vector) or in ``R`` rounds of ``epochs / R``
(:mod:`medlib.federated`). :func:`rounds_study`: accuracy against R on the paper's split.
:func:`heterogeneity_study`: every method on the paper's split, Dirichlet label skew (α = 100, 1, 0.3;
Hsu et al., 2019) and patient-grouped sites, at :func:`federated_rounds` rounds. The sites are always a
re-partition of the paper's training pool, so the test set and Full Training are shared. Every averaged
model gets the same BatchNorm restoration (:data:`RESTORE`); FedBN keeps each site's BN and reports the
mean over the sites' models; Base Model is the mean of the site models. Site models of other partitions
and federations are runs (:mod:`medlib.runs.beyond`), cached under ``$MEDLIB_HOME/artifacts``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medlib.bn import restore_batchnorm
from medlib.errors import MedlibError
from medlib.experiments.data import SiteData
# from the defining module, not the package: the package imports its plan, which imports medlib.estimates,
# and medlib.estimates counts this chapter
from medlib.experiments.paper_a.runs import Trained, _finetune, artifact_key, train_sites
from medlib.federated import STRATEGIES, FederatedSite, rounds_grid, run_federated
from medlib.io import atomic_write_text
from medlib.models import load_classifier, save_classifier
from medlib.paths import artifacts_dir, results_dir
from medlib.profiles import Profile
from medlib.train import class_weights_from_labels
from medlib.vectors import merge

__all__ = [
    "PARTITIONS", "ONE_SHOT", "FEDERATED", "METHODS", "RESTORE", "FEDPROX_MU", "TIES_DENSITY", "TIES_LAM",
    "DARE_DROP", "Hospitals", "hospitals", "partitioned", "federation_path", "partition_slug", "chapter_work",
    "federated_rounds", "partitions_for", "one_shot_accuracies",
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


def partition_slug(partition: str) -> str:
    """The partition's name in file names and run ids: ``equal``, ``dirichlet0.3``, ``grouped``."""
    method, alpha = PARTITIONS[partition]
    return method if alpha is None else f"{method}{alpha:g}"


def partitioned(base: Trained, partition: str) -> Trained:
    """``base`` with its training pool split again by ``partition`` (same test set and θ_pre); no site trained."""
    if partition not in PARTITIONS:
        raise MedlibError(f"unknown partition {partition!r}; expected one of {list(PARTITIONS)}")
    method, alpha = PARTITIONS[partition]
    if method == "equal":
        return base
    from medlib.data.partition import partition_sites

    data, groups = base.data, base.data.dataset.groups
    if method == "grouped" and groups is None:
        others = [p for p in PARTITIONS if PARTITIONS[p][0] != "grouped"]
        raise MedlibError(f"{base.dataset} has no patient ids, so it cannot be partitioned by patient; "
                          f"use one of {others}")
    part = partition_sites(data.labels, base.profile.paper_a.n_sites, method=method, seed=base.seed,
                           alpha=alpha or 0.5, groups=groups, test_indices=data.partition.test)
    tr = copy.copy(base)
    tr.data = SiteData(data.dataset, data.images, data.labels, part)
    tr.sites, tr.histories, tr._digests = [], {}, dict(base._digests)
    return tr


def partitions_for(dataset: str, profile: Profile) -> list[str]:
    """The partitions that apply to ``dataset``: grouped only where the data has patient ids."""
    from medlib.experiments.data import ensure_dataset

    has_groups = ensure_dataset(dataset, profile).groups is not None
    return [p for p in PARTITIONS if has_groups or PARTITIONS[p][0] != "grouped"]


def hospitals(dataset: str, profile: Profile, seed: int | None = None,
              partition: str = "equal (paper)") -> Hospitals:
    """θ_pre and the site models of ``dataset`` under ``partition`` (the paper's split: Paper A's own models)."""
    if partition not in PARTITIONS:
        raise MedlibError(f"unknown partition {partition!r}; expected one of {list(PARTITIONS)}")
    P = profile
    base = train_sites(dataset, P, P.first_seed if seed is None else seed)
    tr = partitioned(base, partition)
    if tr is not base:  # fine-tuned exactly as Paper A's sites, cached by Paper A's key
        slug = partition_slug(partition)
        tr.sites = [_finetune(tr, idx, f"{slug}-site{k}")[0] for k, idx in enumerate(tr.data.partition.sites, 1)]
    return Hospitals(partition, tr)


def chapter_work(profile: Profile) -> dict[str, list[tuple[str, str, int]]]:
    """Every federation the chapter trains, ``(partition, strategy, rounds)`` per dataset (heterogeneity: the first)."""
    P = profile
    plan = book_plan(P)
    grid = plan["rounds"] or rounds_grid(P.paper_a.epochs)
    out = {}
    for i, dataset in enumerate(plan["datasets"]):
        work = [("equal (paper)", s, r) for s in STRATEGIES for r in grid]
        if i == 0:
            parts = plan["partitions"] or partitions_for(dataset, P)
            work += [(p, s, federated_rounds(P)) for p in parts for s in STRATEGIES]
        out[dataset] = list(dict.fromkeys(work))
    return out


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


def federation_path(tr: Trained, strategy: str, rounds: int):
    """Where a federation over ``tr``'s sites is cached, keyed by its sites' data, θ_pre and settings."""
    parts = {"sites": [artifact_key(tr, idx) for idx in tr.data.partition.sites], "strategy": strategy,
             "rounds": rounds, "mu": FEDPROX_MU if strategy == "fedprox" else None, "restore": RESTORE}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return artifacts_dir() / "beyond" / f"{tr.dataset}-{strategy}-R{rounds}-{key}.safetensors"


def federated_accuracy(h: Hospitals, strategy: str, rounds: int) -> dict:
    """One federation (cached): ``{"accuracy", "seconds", "sites"}``; accuracy after BN restoration."""
    tr, P = h.trained, h.profile.paper_a
    if P.epochs % rounds:
        raise MedlibError(f"{rounds} rounds do not split {P.epochs} local epochs evenly; "
                          f"use one of {rounds_grid(P.epochs)}")
    path = federation_path(tr, strategy, rounds)
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
    """Accuracy vs rounds (default: every R of :func:`~medlib.federated.rounds_grid`) on the paper's split."""
    P = profile
    h = hospitals(dataset, P, seed)
    rows = [{"method": name, "rounds": 1, "accuracy": acc, "seconds": np.nan}
            for name, acc in one_shot_accuracies(h).items() if name in ("Params Mean", "Data Vector")]
    for strategy in strategies:
        for r in rounds_grid(P.paper_a.epochs) if rounds is None else rounds:
            out = federated_accuracy(h, strategy, r)
            rows.append({"method": FEDERATED[strategy], "rounds": r, "accuracy": out["accuracy"],
                         "seconds": out["seconds"]})
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
        part = partitioned(base, name).data.partition
        n_classes = len(base.data.classes)
        pool = np.bincount(base.data.labels[part.train], minlength=n_classes) / len(part.train)
        tv = [0.5 * np.abs(np.bincount(base.data.labels[s], minlength=n_classes) / len(s) - pool).sum()
              for s in part.sites]
        out[name] = float(np.mean(tv))
    return pd.Series(out, name="label skew (mean TV distance)")


def book_plan(profile: Profile) -> dict:
    """What the chapter runs: every dataset, partition and R in ``full``; in smoke the Bladder stand-in (smallest,
    with case ids), the paper's, the harshest skewed and the grouped split, and R ∈ {1, 4}."""
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
