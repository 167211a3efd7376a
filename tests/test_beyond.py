"""Beyond the paper (medlib.experiments.beyond): partitions, cost counts and the glued conclusion."""

import numpy as np
import pandas as pd
import pytest
import torch

from medlib.data.base import ImageDataset
from medlib.data.partition import partition_sites
from medlib.errors import MedlibError
from medlib.experiments import beyond
from medlib.experiments.data import SiteData
from medlib.experiments.paper_a import Trained
from medlib.profiles import FULL, SMOKE, dry_run


def _trained(groups=None, n=200, seed=3):
    P = SMOKE
    labels = np.arange(n) % 4
    part = partition_sites(labels, 4, "equal", groups=groups, seed=seed, test_fraction=0.2)
    ds = ImageDataset.__new__(ImageDataset)
    ds.groups = groups
    data = SiteData(ds, torch.zeros(n, 3, 2, 2, dtype=torch.uint8), labels, part)
    return Trained("retina", P, seed, data, None, [], None)


@pytest.mark.parametrize("partition", ["Dirichlet α=0.3", "grouped by patient"])
def test_repartition_keeps_the_test_set_and_the_training_pool(partition):
    groups = np.repeat(np.arange(50), 4)
    tr = _trained(groups)
    method = beyond.PARTITIONS[partition][0]
    data = beyond.partitioned(tr, partition).data
    assert beyond.partitioned(tr, "equal (paper)") is tr  # the paper's split is Paper A's own
    assert np.array_equal(data.partition.test, tr.data.partition.test)
    assert np.array_equal(np.sort(np.concatenate(data.partition.sites)), tr.data.partition.train)
    sizes = [len(s) for s in data.partition.sites]
    assert sum(sizes) == len(tr.data.partition.train) and min(sizes) > 0
    if method == "grouped":  # no patient in two hospitals
        owners = [set(groups[s]) for s in data.partition.sites]
        assert all(not (owners[a] & owners[b]) for a in range(4) for b in range(a))
    else:  # α = 0.3 skews the class mix away from the equal split's
        mix = [np.bincount(tr.data.labels[s], minlength=4) / len(s) for s in data.partition.sites]
        assert max(float(np.abs(m - 0.25).sum()) for m in mix) > 0.3


def test_site_epoch_counts_follow_the_rounds_grid():
    # smoke: 4 epochs → R ∈ {1, 4}: 3 strategies × 2 = 6 federations, 4 more partitions × (sites + 3) = 16 runs,
    # each 4 sites × 4 epochs
    assert beyond.site_epochs(SMOKE) == (6 + 16) * 16
    # full: 64 epochs → R ∈ {1, 4, 16, 64}: 12 federations + 16 runs, each 4 × 64 site-epochs
    assert beyond.site_epochs(FULL) == (12 + 16) * 256
    est = beyond.cost_estimate(FULL, seconds_per_site_epoch=2.0)
    assert est["site_epochs"] == 28 * 256 * 3 * 3
    assert est["hours"] == pytest.approx(28 * 256 * 9 * 2.0 / 3600)
    assert beyond.federated_rounds(SMOKE) == 4 and beyond.federated_rounds(FULL) == 16


def test_book_plan_runs_bladder_in_smoke_and_everything_in_full():
    assert beyond.book_plan(SMOKE) == {"datasets": ["bladder-tissue"], "rounds": (1, 4),
                                         "partitions": ["equal (paper)", "Dirichlet α=0.3", "grouped by patient"]}
    full = beyond.book_plan(FULL)
    assert full["datasets"] == ["retina", "bladder-tissue", "pad-ufes-20"]
    assert full["partitions"] is None and full["rounds"] is None  # every partition, every R of the grid
    # a dry run goes through the full profile's paths on one dataset
    assert beyond.book_plan(dry_run(FULL))["datasets"] == ["bladder-tissue"]


def test_summary_picks_the_numbers_the_conclusion_quotes():
    rounds = pd.DataFrame([
        ("Params Mean", 1, 50.0), ("Data Vector", 1, 55.0),
        ("FedAvg", 1, 50.0), ("FedAvg", 4, 62.0), ("FedProx", 4, 60.0), ("FedBN", 4, 58.0),
    ], columns=["method", "rounds", "accuracy"])
    het = pd.DataFrame({m: [60.0, 50.0] for m in beyond.METHODS}, index=["equal (paper)", "Dirichlet α=0.3"])
    het.loc["Dirichlet α=0.3", "Data Vector"] = 30.0
    het.loc["Dirichlet α=0.3", "FedBN"] = 58.0
    het["Full Training"] = 70.0
    s = beyond.summary(rounds, het)
    assert (s["best_federated"], s["best_federated_rounds"], s["best_federated_accuracy"]) == ("FedAvg", 4, 62.0)
    assert s["federated_gain"] == pytest.approx(7.0)
    assert s["hardest_partition"] == "Dirichlet α=0.3"
    assert s["data_vector_drop"] == pytest.approx(30.0) and s["fedavg_drop"] == pytest.approx(10.0)
    assert (s["most_robust"], s["least_robust"]) == ("FedBN", "Data Vector")


def test_unknown_partition_is_a_clear_error():
    with pytest.raises(MedlibError, match="unknown partition 'iid'"):
        beyond.hospitals("retina", SMOKE, 0, "iid")
    with pytest.raises(MedlibError, match="retina has no patient ids"):
        beyond.partitioned(_trained(), "grouped by patient")


def test_the_chapters_work_is_every_federation_once():
    work = beyond.chapter_work(SMOKE)
    assert list(work) == ["bladder-tissue"]
    # rounds study: 3 strategies × R ∈ {1, 4}; heterogeneity at R = 4 adds the two other partitions
    # (its paper-split federations are the rounds study's own)
    assert len(work["bladder-tissue"]) == 3 * 2 + 2 * 3
    assert ("grouped by patient", "fedbn", 4) in work["bladder-tissue"]
    assert [beyond.partition_slug(p) for p in beyond.PARTITIONS] == [
        "equal", "dirichlet100", "dirichlet1", "dirichlet0.3", "grouped"]


def test_a_federation_is_a_run_that_the_chapter_then_reads(capsys):
    """The chapter's trainings are runs (``medlib runs --paper beyond``): listed, executed, then found."""
    from medlib.runs import Selection, execute_one, plan, read_state
    from medlib.runs import paper_a as runs_a

    planned = plan(SMOKE, Selection(paper="beyond"))
    pre, work = planned[0].run, [p.run for p in planned[1:]]
    assert pre.id == "a:theta_pre:pretrain:s3315"
    # bladder, seed 3315: 3 strategies × R ∈ {1, 4} on the paper's split, then 2 other partitions × (4 sites + 3)
    assert len(work) == 6 + 2 * (4 + 3) and all(r.needs == (pre.id,) for r in work)
    assert {r.subject for r in work} == {"bladder-tissue"}
    assert "grouped-site3" in {r.role for r in work} and "equal-fedavg-R1" in {r.role for r in work}
    execute_one(pre, SMOKE)  # θ_pre, shared with every test and the book (built once, under its lock)
    (run,) = [p.run for p in plan(SMOKE, Selection(paper="beyond")) if p.run.role == "equal-fedavg-R1"]
    assert run.key and run.artifacts and run.prior_basis == "estimated (CPU)"
    execute_one(run, SMOKE)
    assert read_state(run).done
    capsys.readouterr()
    tr = runs_a._trained(SMOKE, "bladder-tissue", run.seed)
    outcome = beyond.federated_accuracy(beyond.Hospitals("equal (paper)", tr), "fedavg", 1)
    assert "FedAvg R=1" not in capsys.readouterr().out  # read from the run's artifact, not trained again
    assert 0.0 <= outcome["accuracy"] <= 100.0
