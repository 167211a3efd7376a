"""Part A's computed sentences: numbers planted on both sides of each verdict flip it."""

import pytest

from medlib.experiments.paper_a import claims


def test_relation_uses_the_stated_tolerance():
    assert claims.relation(55.0, 50.0) == "above"
    assert claims.relation(50.0, 55.0) == "below"
    assert claims.relation(50.9, 50.0) == "about the same as"  # 0.9 ≤ TOLERANCE = 1 point
    assert claims.relation(50.9, 50.0, tol=0.5) == "above"


def test_pooling_verdict_follows_full_against_best_site():
    # the run: best site 55.0%, full 35.0% — "pooling data helps" would be false
    assert "does not help" in claims.pooling(best_site=55.0, full=35.0)
    assert claims.pooling(best_site=35.0, full=55.0).startswith("pooling data helps")
    assert "no clear difference here (within 1 point)" in claims.pooling(best_site=55.0, full=55.5)


def test_alternative_restorations_are_judged_against_the_papers_epoch():
    # the run: the paper's one-epoch restore 46.7%, the "fixes" 32.5% and 30.0%
    low = claims.against_paper_restore(46.7, {"the cumulative epoch": 32.5, "recomputing": 30.0})
    assert low.startswith("the cumulative epoch is below and recomputing is below the paper's one-epoch restore: ")
    assert low.endswith("not what holds the restored model back")
    high = claims.against_paper_restore(30.0, {"the cumulative epoch": 32.5, "recomputing": 46.7})
    assert "is above" in high and high.endswith("pays on this run")
    mixed = claims.against_paper_restore(32.0, {"the cumulative epoch": 32.5, "recomputing": 46.7})
    assert mixed.startswith("the cumulative epoch is about the same and recomputing is above the paper's")
    assert mixed.endswith("no clear gain")


def test_agreement_and_rounding_flip_at_their_thresholds():
    assert claims.agreement(40.0, 40.6) == "so they land close together (within 1 point)"
    assert claims.agreement(40.0, 43.5) == "yet on this run they are 3.5 points apart (more than 1)"
    assert claims.rounding(3e-8) == "floating-point rounding, nothing more"
    assert claims.rounding(2e-3).startswith("more than floating-point rounding")


@pytest.mark.parametrize("closer, n, word", [(3, 3, "as in"), (0, 3, "unlike"), (1, 3, "only partly")])
def test_figure2_verdict_counts_datasets(closer, n, word):
    assert claims.merged_vs_sites(closer, n).startswith(word)


def test_full_training_sanity_check_sentence():
    assert claims.full_vs_sites(True).startswith("beats every single site")
    assert "the sanity check fails" in claims.full_vs_sites(False)


def test_kept_share_verdict_flips_at_half():
    assert claims.kept(0.66).startswith("the paper's restoration mostly keeps")
    assert claims.kept(0.2).startswith("the epoch replaces most")
    assert claims.kept(float("nan")).endswith("nothing is replaced")


def test_gap_and_loss_phrases_carry_the_sign_in_words():
    assert claims.gap(55.0, 51.9) == "3.1 points above"
    assert claims.gap(48.0, 50.0) == "2.0 points below"
    assert claims.gap(50.4, 50.0) == "within 1 point of"
    assert claims.loss(3.14) == "lost 3.1 points"
    assert claims.loss(-2.0) == "gained 2.0 points"
