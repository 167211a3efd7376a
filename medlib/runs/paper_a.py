"""Paper A's runs: per dataset and seed, N site fine-tunings and one full training (Tables 1–3), after the
smoke profile's synthetic-pretrained θ_pre (a run of its own; full: the downloaded ResNet50). Keys and paths
are :mod:`medlib.experiments.paper_a.runs`'s, so a run executed here is the model a notebook finds."""

from __future__ import annotations

from medlib.errors import DataError, MedlibError
from medlib.estimates import paper_a_seconds
from medlib.profiles import Profile
from medlib.runs.spec import Run, relative

__all__ = ["PAPER", "TABLES", "runs", "execute"]

PAPER = "a"
TABLES = {"1": "retina", "2": "bladder-tissue", "3": "pad-ufes-20"}  # Tian et al. 2024, Tables 1–3


def _pretrain_run(P: Profile) -> Run | None:
    from medlib import pretrain

    A = P.paper_a
    if not A.pretrain_epochs:
        return None  # θ_pre is downloaded (full) or random (dry run): nothing to train
    key = pretrain.pretrain_key(A)
    path = pretrain.pretrained_backbone_file(A)
    prior = paper_a_seconds(P, A.pretrain_images * 1.25, 0, epochs=A.pretrain_epochs)  # larger images than a site's
    return Run(PAPER, "theta_pre", "pretrain", A.seed, key, P.label, A.pretrain_epochs, A.pretrain_images,
               (relative(path),), None, (), family="a:pretrain", prior_s=prior[0], prior_basis=prior[1])


def _experiments():
    from medlib.experiments.paper_a import runs as experiments

    return experiments


def _roles(data) -> list[tuple[str, object]]:
    return [(f"site{k}", idx) for k, idx in enumerate(data.partition.sites, 1)] + [("full", data.partition.train)]


def _trained(P: Profile, dataset: str, seed: int, data=None):
    """The paper's :class:`Trained` of one dataset and seed, before any fine-tuning (θ_pre must exist)."""
    ex = _experiments()
    data = ex.paper_sites(dataset, P, seed) if data is None else data
    pre = ex.pretrained_classifier(P, len(data.classes), seed)
    return ex.Trained(dataset, P, seed, data, pre, full=pre)


def _on_disk(name: str, P: Profile) -> bool:
    from medlib.data import load_dataset
    from medlib.paths import data_root

    try:
        return P.data_source == "synthetic" or load_dataset(name, data_root(name, "real")) is not None
    except (DataError, MedlibError):
        return False


def runs(P: Profile, *, datasets=None, seeds=None, split: str = "paper", test_seed: int | None = None,
         download: bool = True) -> list[Run]:
    """Every Paper A training of ``datasets`` × ``seeds`` (default: the profile's), θ_pre first.

    Keys hash θ_pre's weights and the partition's data: until θ_pre is trained they are empty.
    Listing writes the synthetic stand-in or, with ``download``, fetches the real data once;
    without it a real dataset not on disk is listed with every run to do and no sizes.
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
    roles = [f"site{k}" for k in range(1, P.paper_a.n_sites + 1)] + ["full"]
    for dataset in datasets:
        here = download or _on_disk(dataset, P)
        for seed in seeds:
            if not here:
                out += [Run(PAPER, dataset, role, seed, "", P.label, P.paper_a.epochs, 0, (), None, needs,
                            family=f"a:{dataset}", prior_basis="dataset not downloaded yet") for role in roles]
                continue
            data = ex.paper_sites(dataset, P, seed, split=split, test_seed=test_seed)
            tr = _trained(P, dataset, seed, data) if keyed else None
            for role, idx in _roles(data):
                prior = paper_a_seconds(P, len(idx), len(data.partition.test))
                if tr is None:
                    out.append(Run(PAPER, dataset, role, seed, "", P.label, P.paper_a.epochs, len(idx), (), None,
                                   needs, family=f"a:{dataset}", prior_s=prior[0], prior_basis=prior[1]))
                    continue
                path = ex.model_path(tr, idx, role)
                out.append(Run(PAPER, dataset, role, seed, path.stem.rsplit("-", 1)[-1], P.label, P.paper_a.epochs,
                               len(idx), (relative(path),), relative(path.with_suffix(".ckpt")), needs,
                               family=f"a:{dataset}", prior_s=prior[0], prior_basis=prior[1]))
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
