"""The grouped test set is class-aware (stratified by group) and can stay fixed across training seeds."""

import numpy as np

from medlib.data.partition import grouped_holdout, partition_sites


def bladder_like(seed=0):
    """23 cases of 30–150 frames: each case mostly one class (70%), the rest spread over the others."""
    rng = np.random.default_rng(seed)
    case_class = np.array([0] * 8 + [1] * 7 + [2] * 5 + [3] * 3)
    sizes = rng.integers(30, 150, size=len(case_class))
    groups = np.repeat(np.arange(len(case_class)), sizes)
    main = np.repeat(case_class, sizes)
    labels = np.where(rng.random(len(main)) < 0.7, main, rng.integers(0, 4, len(main)))
    return labels, groups


def test_every_class_gets_its_share_of_test_frames_in_whole_cases():
    labels, groups = bladder_like()
    target = 189 * np.bincount(labels) / len(labels)
    for seed in range(20):
        part = partition_sites(labels, 4, groups=groups, seed=seed, test_size=189)
        test_counts = np.bincount(labels[part.test], minlength=4)
        assert (test_counts > 0).all(), (seed, test_counts)  # no class left out of the test set
        assert np.abs(test_counts - target).max() < 60, (seed, test_counts, target)
        assert not set(groups[part.test]) & set(groups[part.train])  # whole cases


def test_class_aware_holdout_beats_size_only_holdout():
    labels, groups = bladder_like()
    target = 189 * np.bincount(labels) / len(labels)

    def error(test):
        return np.abs(np.bincount(labels[test], minlength=4) - target).sum()

    aware = np.mean([error(grouped_holdout(groups, 189, seed, labels=labels)) for seed in range(20)])
    blind = np.mean([error(grouped_holdout(groups, 189, seed)) for seed in range(20)])
    assert aware < 0.7 * blind, (aware, blind)


def test_test_seed_fixes_the_test_set_while_the_sites_follow_the_seed():
    labels, groups = bladder_like()
    a = partition_sites(labels, 4, groups=groups, seed=1, test_size=189, test_seed=3315)
    b = partition_sites(labels, 4, groups=groups, seed=2, test_size=189, test_seed=3315)
    assert np.array_equal(a.test, b.test)
    assert not all(np.array_equal(x, y) for x, y in zip(a.sites, b.sites))
    drawn = {tuple(partition_sites(labels, 4, groups=groups, seed=s, test_size=189).test) for s in range(6)}
    assert len(drawn) > 1  # without test_seed the seed draws the test set too


def test_the_tables_share_one_test_set_across_training_seeds_unless_asked(tmp_path, monkeypatch):
    """paper_sites: the training seed moves the sites, not the test set; test_seed moves the test set."""
    import numpy as np

    from medlib.experiments.paper_a.runs import paper_sites
    from medlib.profiles import SMOKE

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    a, b = paper_sites("retina", SMOKE, 0), paper_sites("retina", SMOKE, 1)
    assert np.array_equal(np.sort(a.partition.test), np.sort(b.partition.test))
    other = paper_sites("retina", SMOKE, 0, test_seed=SMOKE.first_seed + 7)
    assert not np.array_equal(np.sort(a.partition.test), np.sort(other.partition.test))
