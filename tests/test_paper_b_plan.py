"""Paper B's training plan: measured seconds when runs are cached, else the FLOPs estimate README uses."""

from __future__ import annotations

import math

from medlib.estimates import forward_flops, gpu_seconds, GPU_IMAGES_PER_SECOND
from medlib.experiments.paper_b import runs
from medlib.experiments.paper_b.configs import all_configs
from medlib.profiles import FULL, SMOKE


def test_full_plan_without_cached_runs_is_estimated_from_flops(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    smoke_pairs = runs._data_for(SMOKE)  # the full profile's derm7pt is not here: its fingerprint is all the plan reads
    monkeypatch.setattr(runs, "_data_for", lambda P, overrides=None: smoke_pairs)
    ammfm = next(c for c in all_configs(FULL) if not c.single_modal)
    row = runs.training_plan([ammfm], FULL).iloc[0]

    B = FULL.paper_b
    # by hand: 3 passes per trained pair and epoch, 1 per validated pair, TTA views + the last model on valid+test
    validations = len(set(range(B.eval_every, B.epochs + 1, B.eval_every)) | {B.epochs})
    pairs = 413 * B.epochs * 3 + 203 * validations + (B.tta_views + 1) * (203 + 395)
    seconds = pairs * forward_flops("B", ammfm.name) / (GPU_IMAGES_PER_SECOND["T4"] * 3 * forward_flops("A", "resnet50"))
    assert row["basis"] == "estimated (T4, from FLOPs)"
    assert row["seconds per run"] == round(seconds) == round(gpu_seconds(pairs * forward_flops("B", ammfm.name), "T4"))
    assert row["cached"] == 0 and row["to train"] == B.n_runs


def test_smoke_plan_says_when_nothing_is_known(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    ammfm = next(c for c in all_configs(SMOKE) if not c.single_modal)
    row = runs.training_plan([ammfm], SMOKE).iloc[0]
    assert row["basis"] == "unknown yet" and math.isnan(row["seconds per run"])
