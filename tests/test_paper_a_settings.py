"""Paper A's settings table: every choice credited to its source, ours filled from the profile."""

import dataclasses

from medlib.experiments.paper_a import settings_table
from medlib.profiles import FULL, SMOKE


def test_choices_are_credited_to_their_source():
    table = settings_table(FULL)
    why = table["why"]
    assert why["λ"].startswith("the paper's §4.1 text") and why["learning rate"] == "the paper's Table 4"
    assert table.loc["augmentation", "paper"].startswith("none named")  # those words are Paper B's
    for ours in ("augmentation", "image size", "class weights", "merged BatchNorm buffers", "Random Vector",
                 "restoring epoch", "precision"):
        assert why[ours].startswith("our choice"), ours
    assert "centre square" in table.loc["image size", "ours (full)"]


def test_our_column_follows_the_profile():
    faster = dataclasses.replace(SMOKE, paper_a=dataclasses.replace(SMOKE.paper_a, lr=3e-4, batch_size=8))
    table = settings_table(faster)
    column = f"ours ({faster.label})"
    assert table.loc["learning rate", column] == "3e-4"
    assert "lr 3e-4, batch 8" in table.loc["restoring epoch", column]
    assert table.loc["learning rate", "why"].startswith("smoke:")  # differs from the paper, so not credited to it
