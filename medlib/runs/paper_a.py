"""Paper A's runs: per dataset and seed, N site fine-tunings and one full training (Tables 1–3), after the
smoke profile's synthetic-pretrained θ_pre (a run of its own; full: the downloaded ResNet50). Keys and paths
are :mod:`medlib.experiments.paper_a.runs`'s, so a run executed here is the model a notebook finds."""

from __future__ import annotations

import os
from pathlib import Path

from medlib.errors import MedlibError
from medlib.paths import medlib_home
from medlib.profiles import Profile
from medlib.runs.spec import Run

__all__ = ["PAPER", "TABLES", "runs", "execute"]

PAPER = "a"
TABLES = {"1": "retina", "2": "bladder-tissue", "3": "pad-ufes-20"}  # Tian et al. 2024, Tables 1–3


def _rel(path: Path) -> str:
    return os.path.relpath(path, medlib_home())


def _pretrain_run(P: Profile) -> Run | None:
    from medlib import pretrain

    A = P.paper_a
    if not A.pretrain_epochs:
        return None  # θ_pre is downloaded (full) or random (dry run): nothing to train
    key = pretrain.pretrain_key(A)
    path = pretrain.pretrained_backbone_file(A)
    return Run(PAPER, "theta_pre", "pretrain", A.seed, key, P.label, A.pretrain_epochs, A.pretrain_images,
               (_rel(path),), None, (), family="a:pretrain")


def _experiments():
    from medlib.experiments.paper_a import runs as experiments

    return experiments


def _roles(data) -> list[tuple[str, object]]:
    return [(f"site{k}", idx) for k, idx in enumerate(data.partition.sites, 1)] + [("full", data.partition.train)]


def _trained(P: Profile, dataset: str, seed: int):
    """The paper's :class:`Trained` of one dataset and seed, before any fine-tuning (θ_pre must exist)."""
    ex = _experiments()
    data = ex.paper_sites(dataset, P, seed)
    pre = ex.pretrained_classifier(P, len(data.classes), seed)
    return ex.Trained(dataset, P, seed, data, pre, full=pre)


def runs(P: Profile, *, datasets=None, seeds=None) -> list[Run]:
    """Every Paper A training of ``datasets`` × ``seeds`` (default: the profile's), θ_pre first.

    A fine-tuning's key hashes θ_pre: until θ_pre is trained, the site runs are listed with an empty key.
    """
    from medlib.runs.spec import read_state

    known = P.paper_a.datasets
    datasets = list(known if datasets is None else datasets)
    unknown = [d for d in datasets if d not in known]
    if unknown:
        raise MedlibError(f"Paper A has no dataset {unknown}; expected one of {list(known)}")
    seeds = list(P.seeds if seeds is None else seeds)
    pre = _pretrain_run(P)
    out = [pre] if pre is not None else []
    needs = (pre.id,) if pre is not None else ()
    keyed = pre is None or read_state(pre).done
    ex = _experiments()
    for dataset in datasets:
        for seed in seeds:
            tr = _trained(P, dataset, seed) if keyed else None
            data = tr.data if tr is not None else ex.paper_sites(dataset, P, seed)
            for role, idx in _roles(data):
                if tr is None:
                    out.append(Run(PAPER, dataset, role, seed, "", P.label, P.paper_a.epochs, len(idx), (), None,
                                   needs, family=f"a:{dataset}"))
                    continue
                key, path = ex.artifact_key(tr, idx), ex.model_path(tr, idx, role)
                out.append(Run(PAPER, dataset, role, seed, key, P.label, P.paper_a.epochs, len(idx),
                               (_rel(path),), _rel(path.with_suffix(".ckpt")), needs, family=f"a:{dataset}"))
    return out


def execute(run: Run, P: Profile) -> None:
    """Train ``run`` (θ_pre, or one site / the full model of one dataset and seed) into its artifacts."""
    from medlib.pretrain import pretrained_backbone_path

    if run.role == "pretrain":
        pretrained_backbone_path(P.paper_a)
        return
    tr = _trained(P, run.subject, run.seed)
    indices = dict(_roles(tr.data)).get(run.role)
    if indices is None:
        raise MedlibError(f"run {run.id}: no role {run.role!r} in a {P.paper_a.n_sites}-site partition")
    key = _experiments().artifact_key(tr, indices)
    if key != run.key:
        raise MedlibError(f"run {run.id} was planned with key {run.key!r} but its data and θ_pre now give {key}: "
                          "they changed between plan and execution; plan again")
    _experiments()._finetune(tr, indices, run.role)
