"""Weighted averaging (Eq. 4) and the validation weight search of paper B / FusionM4Net."""

import numpy as np
import pytest

from medlib.ammfm import NUM_CLASSES, ConfigError, fuse, fused_probabilities, mean_task_accuracy, search_weights

# Three samples whose binary margins a_i (dermoscopy), b_i (clinical), c_i (fusion) make
# sample i right iff  w_D a_i + w_C b_i + w_FU c_i > 0:
#   s0 (0.9, -0.9, 0)  -> w_D > w_C
#   s1 (0, 0.9, -0.9)  -> w_C > w_FU
#   s2 (-0.35, 0, 0.9) -> w_FU > (7/18) w_D   (no grid triple sits on this boundary)
# So all three are right exactly when w_D > w_C > w_FU > 7 w_D / 18; equal weights get s0
# and s1 wrong (a tie goes to class 0, the wrong one).
MARGINS = np.array([[0.9, -0.9, 0.0], [0.0, 0.9, -0.9], [-0.35, 0.0, 0.9]])
BRANCH_COLUMN = {"dermoscopy": 0, "clinical": 1, "fusion": 2}


def _outputs(kind):
    """Per branch, 8 tasks of (3, n_k) logits; the true class is 1 in every task."""
    out = {}
    for branch, col in BRANCH_COLUMN.items():
        a = MARGINS[:, col]
        tasks = []
        for n in NUM_CLASSES:
            if kind == "logit":  # logit margin a between class 1 and class 0
                z = np.full((3, n), -50.0)
                z[:, 0], z[:, 1] = 0.0, a
            else:  # log-probabilities: p1 - p0 = a, so softmax gives back exactly p
                p = np.full((3, n), 1e-300)
                p[:, 0], p[:, 1] = (1 - a) / 2, (1 + a) / 2
                z = np.log(p)
            tasks.append(z)
        out[branch] = tasks
    return out


TARGETS = np.ones((3, 8), dtype=np.int64)


def _in_region(w):
    return w["dermoscopy"] > w["clinical"] > w["fusion"] > 7 * w["dermoscopy"] / 18


@pytest.mark.parametrize("mode", ["logit", "probability"])
def test_search_finds_the_only_weights_that_get_everything_right(mode):
    result = search_weights(_outputs(mode), TARGETS, n=20, mode=mode)
    assert result.score == 1.0
    assert _in_region(result.weights)
    assert sum(result.weights.values()) == pytest.approx(1.0)
    surface = result.surface
    # every perfect triple on the grid lies in the region, and vice versa. Triples on a
    # boundary (a zero margin, e.g. w_D == w_C) tie exactly in logit mode; in probability
    # mode rounding may break the tie either way, so they are left out of this check.
    perfect = surface[surface.score == 1.0]
    assert len(perfect) > 0
    checked = 0
    for _, row in surface.iterrows():
        w = {"dermoscopy": row.wn_D, "clinical": row.wn_C, "fusion": row.wn_FU}
        if np.abs(MARGINS @ [row.wn_D, row.wn_C, row.wn_FU]).min() < 1e-9:
            continue
        assert (row.score == 1.0) == _in_region(w)
        checked += 1
    assert checked > 900
    if mode == "logit":  # equal weights: s0 and s1 tie -> class 0, wrong; only s2 right
        equal = surface[(surface.w_D == surface.w_C) & (surface.w_C == surface.w_FU)]
        assert len(equal) == 6 and np.allclose(equal.score, 1 / 3)


def test_grid_skips_triples_above_one_and_keeps_the_rest():
    result = search_weights(_outputs("logit"), TARGETS, n=20, mode="logit")
    # 0.05 k1 + 0.05 k2 + 0.05 k3 <= 1 with k_i in 1..20: C(20, 3) = 1140 triples
    assert len(result.surface) == 1140
    assert (result.surface[["w_D", "w_C", "w_FU"]].sum(axis=1) <= 1 + 1e-9).all()
    assert np.allclose(result.surface[["wn_D", "wn_C", "wn_FU"]].sum(axis=1), 1.0)


def test_fuse_probability_vs_logit_by_hand():
    out = {
        "dermoscopy": [np.array([[0.0, np.log(3.0)]])] * 8,   # p = (0.25, 0.75)
        "clinical": [np.array([[np.log(3.0), 0.0]])] * 8,     # p = (0.75, 0.25)
        "fusion": [np.array([[0.0, 0.0]])] * 8,               # p = (0.5, 0.5)
    }
    out = {b: [z if n == 2 else np.zeros((1, n)) for z, n in zip(v, NUM_CLASSES)] for b, v in out.items()}
    p = fuse(out, (0.5, 0.25, 0.25), mode="probability")[4]  # RS: two classes
    np.testing.assert_allclose(p, [[0.5 * 0.25 + 0.25 * 0.75 + 0.25 * 0.5, 0.5 * 0.75 + 0.25 * 0.25 + 0.25 * 0.5]])
    z = fuse(out, {"dermoscopy": 0.5, "clinical": 0.25, "fusion": 0.25}, mode="logit")[4]
    np.testing.assert_allclose(z, [[0.25 * np.log(3.0), 0.5 * np.log(3.0)]])
    # as probabilities for the metrics: logit mode goes through a softmax
    p_logit = fused_probabilities(out, (0.5, 0.25, 0.25), mode="logit")[4]
    np.testing.assert_allclose(p_logit, [[1 / (1 + 3 ** 0.25), 3 ** 0.25 / (1 + 3 ** 0.25)]])
    np.testing.assert_allclose(fused_probabilities(out, (2, 1, 1), mode="probability")[4], p)


def test_mean_task_accuracy_hand_computed():
    preds = [np.eye(n)[[0, 1]] for n in NUM_CLASSES]  # predicts class 0 then class 1 in every task
    targets = np.array([[0] * 8, [0] * 8])
    assert mean_task_accuracy(preds, targets) == 0.5


def test_bad_inputs_fail_clearly():
    with pytest.raises(ConfigError, match="lack branch"):
        search_weights({"fusion": []}, TARGETS)
    with pytest.raises(ConfigError, match="mode='softmax'"):
        search_weights(_outputs("logit"), TARGETS, mode="softmax")
