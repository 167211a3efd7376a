"""Beyond the paper's runs: the site models of the other partitions and every federation the chapter needs.

They start from Paper A's θ_pre (smoke: its ``pretrain`` run, which they need) and are keyed like Paper A's
fine-tunings, so the chapter (:mod:`medlib.experiments.beyond`) finds what a run executed here wrote.
"""

from __future__ import annotations

from medlib.errors import MedlibError
from medlib.estimates import paper_a_seconds
from medlib.profiles import Profile
from medlib.runs import paper_a
from medlib.runs.spec import Run, read_state, relative

__all__ = ["PAPER", "runs", "execute"]

PAPER = "beyond"


def _chapter():
    from medlib.experiments import beyond

    return beyond


def _work(P: Profile, dataset: str):
    """(role, partition, strategy or None, rounds or site number) of everything the chapter trains on ``dataset``."""
    ex = _chapter()
    out = []
    for partition, strategy, rounds in ex.chapter_work(P)[dataset]:
        slug = ex.partition_slug(partition)
        if partition != "equal (paper)":
            out += [(f"{slug}-site{k}", partition, None, k) for k in range(1, P.paper_a.n_sites + 1)]
        out.append((f"{slug}-{strategy}-R{rounds}", partition, strategy, rounds))
    return list({role: (role, *rest) for role, *rest in out}.values())


def _path(tr, role: str, strategy: str | None, which: int):
    """Where the run's artifact goes: a site's model (keyed like Paper A's) or a federation's."""
    if strategy is None:
        return paper_a._experiments().model_path(tr, tr.data.partition.sites[which - 1], role)
    return _chapter().federation_path(tr, strategy, which)


def runs(P: Profile, *, datasets=None, seeds=None, download: bool = True) -> list[Run]:
    """The chapter's trainings on ``datasets`` (default: its own) × ``seeds`` (default: the profile's first).

    Without ``download``, a real dataset not on disk is listed with every run to do and no sizes.
    """
    ex = _chapter()
    pre = paper_a._pretrain_run(P)
    needs = (pre.id,) if pre is not None else ()
    keyed = pre is None or read_state(pre).done  # keys hash θ_pre's weights
    out = []
    for dataset in ex.book_plan(P)["datasets"]:
        if datasets and dataset not in datasets:
            continue
        here = download or paper_a._on_disk(dataset, P)
        for seed in seeds or (P.first_seed,):
            if not here:  # which partitions apply (patient ids?) is known once it is: one line for them all
                out.append(Run(PAPER, dataset, "all", seed, "", P.label, P.paper_a.epochs, 0, (), None, needs,
                               family=f"beyond:{dataset}", prior_basis="dataset not downloaded yet"))
                continue
            data = paper_a._experiments().paper_sites(dataset, P, seed)
            base = paper_a._trained(P, dataset, seed, data) if keyed else None
            for role, partition, strategy, which in _work(P, dataset):
                tr = ex.partitioned(base, partition) if base is not None else None
                if strategy is None:  # one site's fine-tuning
                    n_train = (len(tr.data.partition.sites[which - 1]) if tr
                               else len(data.partition.train) // P.paper_a.n_sites)
                else:  # a federation: every site trains every local epoch
                    n_train = len(data.partition.train)
                prior = paper_a_seconds(P, n_train, len(data.partition.test) if strategy is None else 0)
                path = _path(tr, role, strategy, which) if tr else None
                out.append(Run(PAPER, dataset, role, seed, path.stem.rsplit("-", 1)[-1] if path else "", P.label,
                               P.paper_a.epochs, n_train, (relative(path),) if path else (),
                               relative(path.with_suffix(".ckpt")) if path and strategy is None else None, needs,
                               family=f"beyond:{dataset}:{'site' if strategy is None else 'federation'}",
                               prior_s=prior[0], prior_basis=prior[1]))
    return ([pre] if pre is not None and out else []) + out


def execute(run: Run, P: Profile) -> None:
    """Train ``run``: one site of a partition, or one federation (with its BatchNorm-restored accuracy)."""
    ex = _chapter()
    work = {role: rest for role, *rest in _work(P, run.subject)}
    if run.role not in work:
        raise MedlibError(f"run {run.id}: the chapter trains no {run.role!r} on {run.subject} in profile {P.label}")
    partition, strategy, which = work[run.role]
    tr = ex.partitioned(paper_a._trained(P, run.subject, run.seed), partition)
    key = _path(tr, run.role, strategy, which).stem.rsplit("-", 1)[-1]
    if key != run.key:
        raise MedlibError(f"run {run.id} was planned with key {run.key!r} but its data and θ_pre now give {key}: "
                          "they changed between plan and execution; plan again")
    if strategy is None:
        paper_a._experiments()._finetune(tr, tr.data.partition.sites[which - 1], run.role)
    else:
        ex.federated_accuracy(ex.Hospitals(partition, tr), strategy, which)
