"""partition_sites: disjoint, complete, deterministic splits into sites + test."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from medlib.data.partition import METHODS, PartitionError, partition_sites

# Retina class sizes (REFERENCE §1): normal 300, cataract 100, glaucoma 101, retina disease 100.
RETINA_LABELS = np.repeat(np.arange(4), [300, 100, 101, 100])


def _patients(n_items: int, seed: int = 0) -> np.ndarray:
    """Patient ids with 1-5 images each, labels consistent within a patient not required."""
    rng = np.random.default_rng(seed)
    ids, k = [], 0
    while len(ids) < n_items:
        ids += [f"PAT_{k}"] * int(rng.integers(1, 6))
        k += 1
    return np.array(ids[:n_items])


def _check_disjoint_and_complete(part, n_items):
    pieces = [*part.sites, part.test]
    for a, b in itertools.combinations(pieces, 2):
        assert np.intersect1d(a, b).size == 0
    assert np.array_equal(np.sort(np.concatenate(pieces)), np.arange(n_items))
    assert all(len(site) > 0 for site in part.sites)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_disjoint_complete_and_deterministic(method):
    groups = _patients(len(RETINA_LABELS))
    first = partition_sites(RETINA_LABELS, 4, method=method, groups=groups, seed=3)
    again = partition_sites(RETINA_LABELS, 4, method=method, groups=groups, seed=3)
    other = partition_sites(RETINA_LABELS, 4, method=method, groups=groups, seed=4)

    _check_disjoint_and_complete(first, len(RETINA_LABELS))
    assert all(np.array_equal(a, b) for a, b in zip(first.sites, again.sites))
    assert np.array_equal(first.test, again.test)
    assert not all(np.array_equal(a, b) for a, b in zip(first.sites, other.sites))
    assert first.method == method and first.seed == 3


def test_equal_is_the_papers_split_with_stratified_test():
    part = partition_sites(RETINA_LABELS, 4, method="equal", seed=0, test_fraction=0.2)
    # 601 * 0.2 = 120.2 -> 120 test images; per class 300/100/101/100 * 0.2 = 60/20/20.2/20.
    assert part.histogram().loc["test"].tolist() == [60, 20, 20, 20]
    # The other 481 go to four sites of 121, 120, 120, 120 (in some order).
    assert sorted(len(s) for s in part.sites) == [120, 120, 120, 121]


def test_stratified_sites_keep_class_ratios():
    part = partition_sites(RETINA_LABELS, 4, method="stratified", seed=1)
    table = part.histogram(["normal", "cataract", "glaucoma", "retina_disease"])
    sites = table.drop(index="test")
    # Pool after the test hold-out: 240 / 80 / 81 / 80 -> 60 / 20 / 20 or 21 / 20 per site.
    assert sites["normal"].tolist() == [60, 60, 60, 60]
    assert sites["cataract"].tolist() == [20, 20, 20, 20]
    assert sorted(sites["glaucoma"].tolist()) == [20, 20, 20, 21]
    assert sites["retina_disease"].tolist() == [20, 20, 20, 20]
    assert sites.sum(axis=1).max() - sites.sum(axis=1).min() <= 1


def test_equal_sizes_differ_by_at_most_one_for_many_shapes():
    rng = np.random.default_rng(0)
    for n_items, n_sites in [(10, 3), (97, 4), (50, 7), (13, 13)]:
        labels = rng.integers(0, 3, n_items)
        for method in ("equal", "stratified"):
            part = partition_sites(labels, n_sites, method=method, test_fraction=0.0)
            sizes = [len(s) for s in part.sites]
            assert max(sizes) - min(sizes) <= 1, (n_items, n_sites, method, sizes)
            assert part.test.size == 0


def test_grouped_never_splits_a_patient():
    groups = _patients(len(RETINA_LABELS), seed=5)
    part = partition_sites(RETINA_LABELS, 4, method="grouped", groups=groups, seed=2)
    owner = {}
    for name, idx in zip([*part.site_names(), "test"], [*part.sites, part.test]):
        for patient in set(groups[idx]):
            assert patient not in owner, f"{patient} in {owner.get(patient)} and {name}"
            owner[patient] = name
    assert len(owner) == len(set(groups))
    # Balanced by greedy assignment: groups hold at most 5 images, so sizes differ by <= 5.
    sizes = [len(s) for s in part.sites]
    assert max(sizes) - min(sizes) <= 5
    # Test set close to 20% (whole patients only).
    assert abs(len(part.test) - 0.2 * len(RETINA_LABELS)) <= 5


def test_groups_given_keep_patients_out_of_train_test_overlap_for_equal_too():
    groups = _patients(len(RETINA_LABELS), seed=6)
    part = partition_sites(RETINA_LABELS, 4, method="equal", groups=groups, seed=0)
    assert not set(groups[part.test]) & set(groups[part.train])


def _label_skew(part, n_classes):
    """Mean total-variation distance between each site's class mix and the pool's."""
    pool = part.histogram().drop(index="test").to_numpy(float)
    overall = pool.sum(0) / pool.sum()
    per_site = pool / pool.sum(1, keepdims=True)
    return 0.5 * np.abs(per_site - overall).sum(1).mean()


def test_dirichlet_skew_grows_as_alpha_shrinks():
    labels = np.repeat(np.arange(5), 200)
    skew = {
        alpha: np.mean([_label_skew(partition_sites(labels, 4, "dirichlet", seed=s, alpha=alpha), 5) for s in range(5)])
        for alpha in (0.05, 0.5, 100.0)
    }
    assert skew[0.05] > skew[0.5] > skew[100.0]
    assert skew[100.0] < 0.05  # nearly iid
    assert skew[0.05] > 0.4  # sites see mostly a few classes


def test_dirichlet_tiny_alpha_still_fills_every_site():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    for seed in range(20):
        part = partition_sites(labels, 6, method="dirichlet", alpha=0.001, seed=seed, test_fraction=0.0)
        _check_disjoint_and_complete(part, len(labels))


def test_two_dimensional_labels_stratify_on_first_column():
    rng = np.random.default_rng(0)
    multi = np.column_stack([RETINA_LABELS, rng.integers(0, 3, (len(RETINA_LABELS), 7))])
    a = partition_sites(multi, 4, method="stratified", seed=9)
    b = partition_sites(RETINA_LABELS, 4, method="stratified", seed=9)
    assert all(np.array_equal(x, y) for x, y in zip(a.sites, b.sites))
    assert np.array_equal(a.test, b.test)


def test_histogram_counts_and_plot():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    part = partition_sites(labels, 2, method="stratified", seed=0, test_fraction=0.0)
    table = part.histogram(["a", "b", "c"])
    assert list(table.columns) == ["a", "b", "c"]
    assert list(table.index) == ["site 1", "site 2", "test"]
    assert table["a"].tolist() == [2, 2, 0]
    assert table["b"].tolist() == [1, 1, 0]
    assert table["c"].tolist() == [2, 2, 0]
    for k, site in enumerate(part.sites):
        assert table.iloc[k].tolist() == np.bincount(labels[site], minlength=3).tolist()

    fig = part.plot(["a", "b", "c"])
    ax = fig.axes[0]
    heights = sorted(round(p.get_height()) for p in ax.patches)
    assert heights == sorted([2, 2, 0, 1, 1, 0, 2, 2, 0])  # 3 classes x 3 bars
    with pytest.raises(PartitionError, match="class names"):
        part.histogram(["a"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(labels=np.zeros(5, int), n_sites=5), "cannot make 5 non-empty sites from 4"),
        (dict(labels=np.zeros(10, int), n_sites=2, method="random"), "unknown partition method 'random'"),
        (dict(labels=np.zeros(10, int), n_sites=2, method="grouped"), "needs groups="),
        (dict(labels=np.zeros(10, int), n_sites=3, method="grouped", groups=["a"] * 5 + ["b"] * 5, test_fraction=0.0),
         "2 groups for 3 sites"),
        (dict(labels=np.zeros(10, int), n_sites=2, groups=["a"] * 3), r"one entry per item, shape \(10,\)"),
        (dict(labels=np.zeros(10, int), n_sites=0), "positive integer"),
        (dict(labels=np.zeros(10, int), n_sites=2, test_fraction=1.0), "test_fraction"),
        (dict(labels=np.zeros(10, int), n_sites=2, method="dirichlet", alpha=0), "alpha"),
        (dict(labels=np.array([0.5, 1.0]), n_sites=1), "integer class indices"),
    ],
)
def test_impossible_requests_raise(kwargs, message):
    with pytest.raises(PartitionError, match=message):
        partition_sites(**kwargs)


def test_test_size_count_and_fixed_test_indices():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    part = partition_sites(y, 4, test_size=25, seed=1)
    assert len(part.test) == 25
    # stratified: quotas 12.5 / 7.5 / 5 -> 12 / 7 / 5, the one left over to the first of the tied remainders
    assert np.bincount(y[part.test]).tolist() == [13, 7, 5]
    groups = np.repeat(np.arange(20), 5)  # 20 cases of 5 items
    grouped = partition_sites(y, 4, groups=groups, test_size=23, seed=0)
    assert len(grouped.test) in (20, 25) and not set(groups[grouped.test]) & set(groups[np.concatenate(grouped.sites)])
    official = np.arange(90, 100)
    fixed = partition_sites(y, 4, test_indices=official, seed=3)
    assert fixed.test.tolist() == list(range(90, 100)) and sum(len(s) for s in fixed.sites) == 90
    with pytest.raises(PartitionError, match="test_indices must index"):
        partition_sites(y, 4, test_indices=[5, 100])
