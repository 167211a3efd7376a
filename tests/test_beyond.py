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


@pytest.mark.parametrize("method,alpha", [("dirichlet", 0.3), ("grouped", None)])
def test_repartition_keeps_the_test_set_and_the_training_pool(method, alpha):
    groups = np.repeat(np.arange(50), 4)
    tr = _trained(groups)
    data = beyond._repartition(tr, method, alpha)
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
