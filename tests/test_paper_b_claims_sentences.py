"""Part B's computed sentences (attention spread): planted rows on both sides of each verdict flip it."""

import torch

from medlib.experiments.paper_b import attention_spread, positions_holding


def test_positions_holding_counts_the_largest_weights_up_to_ninety_percent():
    rows = torch.tensor([[0.25, 0.25, 0.25, 0.25],   # uniform: 4 positions needed for 90%
                         [0.95, 0.05, 0.0, 0.0],     # one position holds 95%
                         [0.1, 0.5, 0.35, 0.05]])    # 0.5 + 0.35 = 0.85 < 0.9: three positions
    assert positions_holding(rows).tolist() == [4, 1, 3]


def test_attention_spread_verdict_flips_between_broad_concentrated_and_one_hot():
    # the numbers: max weight 0.046 (36× uniform) with hundreds of 784 positions — broad
    assert attention_spread(0.046, 323, 784).startswith("broad — 323 of 784 positions hold 90%")
    assert attention_spread(0.2, 40, 784).startswith("concentrated — 40 of 784")
    assert attention_spread(0.93, 1, 784).startswith("near one-hot — 1 of 784 positions holds 90%")
    assert attention_spread(0.6, 30, 784).startswith("near one-hot")  # one position holds most


def test_unscaled_attention_is_broad_at_unit_features_and_saturates_for_large_ones():
    from medlib.experiments.paper_b import attention_logits_at_init

    unit = attention_logits_at_init(channels=32, clinical_channels=8, side=8, cases=2)
    large = attention_logits_at_init(channels=32, clinical_channels=8, side=8, cases=2, feature_std=6.0)
    assert (unit["scaled_positions"] >= unit["unscaled_positions"]).mean() > 0.9
    assert float(torch.tensor(large["unscaled"]).median()) > float(torch.tensor(unit["unscaled"]).median())


def test_recipe_agreement_flips_with_the_weight_gap():
    from medlib.experiments.paper_b import recipe_agreement

    same = recipe_agreement(0.0, 2.4e-7)
    assert same.startswith("are identical to") and "2e-07" in same and "another order" in same
    drift = recipe_agreement(0.0526, 0.15)
    assert drift.startswith("differ from") and "0.05" in drift and "0.1" in drift and "another order" not in drift
