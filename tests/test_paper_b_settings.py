"""Paper B's settings table: the choices the paper leaves open are listed, ours follow the profile."""

import dataclasses

from medlib.experiments.paper_b import settings_table
from medlib.profiles import FULL


def test_unstated_choices_are_listed_with_fusionm4nets_for_comparison():
    table = settings_table(FULL)
    paper, ours = table.columns
    for row, theirs in (("input scaling", "[0, 1], BGR"), ("weight-search grid", "linspace(0.05, 1, 25)"),
                        ("resize method", "bilinear"), ("geometric warp", "BORDER_REFLECT_101"),
                        ("test-time augmentation", "4 by default")):
        assert theirs in table.loc[row, paper], row
        assert table.loc[row, ours].endswith("our choice"), row
    assert table.loc["weight decay", ours] == "0 — our choice"


def test_our_column_follows_the_profile():
    coarse = dataclasses.replace(FULL, paper_b=dataclasses.replace(FULL.paper_b, weight_grid=25, tta_views=4))
    table = settings_table(coarse)
    ours = table.columns[1]
    assert table.loc["weight-search grid", ours].startswith("linspace(0.05, 1, 25)")
    assert table.loc["test-time augmentation", ours] == "4 views (identity, vflip, hflip, vhflip) — our choice"
