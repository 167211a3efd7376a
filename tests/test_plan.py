"""The one planner (medlib.runs.plan) as the pages use it: what will train, what is cached, and the time."""

from __future__ import annotations

import dataclasses
import math

import pytest

from medlib import estimates
from medlib.errors import MedlibError
from medlib.estimates import GPU_IMAGES_PER_SECOND, forward_flops, gpu_seconds, paper_a_seconds
from medlib.profiles import FULL, SMOKE
from medlib.runs import PlannedRun, Selection, format_duration, plan, plan_frame
from medlib.runs import paper_a as runs_a
from medlib.runs.spec import Run, RunState


def test_durations_read_as_a_reader_wants_them():
    assert [format_duration(s) for s in (40, 719, 7500, float("nan"), None)] == [
        "40 s", "12 min", "2 h 05 min", "?", "?"]


def test_a_dataset_not_downloaded_lists_every_model_to_train_and_downloads_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    monkeypatch.setattr(runs_a, "_on_disk", lambda name, P: False)
    planned = plan(FULL, Selection(paper="a", datasets=("retina",), seeds=(3315, 3316), download=False))
    frame = plan_frame(planned)
    assert list(frame["role"]) == ["site1", "site2", "site3", "site4", "full"] * 2
    assert (frame["state"] == "missing").all() and (frame["epochs"] == 64).all()
    assert list(frame["seed"]) == [3315] * 5 + [3316] * 5
    assert (frame["basis"] == "dataset not downloaded yet").all() and frame["seconds"].isna().all()
    assert not any(tmp_path.rglob("*.zip")) and not (tmp_path / "data").exists()
    # the Beyond chapter too: one line per dataset and seed until its data is there
    frame = plan_frame(plan(FULL, Selection(paper="beyond", seeds=(3315,), download=False)))
    assert list(frame["subject"]) == ["retina", "bladder-tissue", "pad-ufes-20"] and set(frame["role"]) == {"all"}
    assert (frame["basis"] == "dataset not downloaded yet").all() and not (tmp_path / "data").exists()


def test_smoke_without_theta_pre_plans_the_pretraining_first(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    frame = plan_frame(plan(SMOKE, Selection(paper="a", datasets=("retina",))))
    first = frame.iloc[0]
    assert (first["subject"], first["role"], first["state"]) == ("theta_pre", "pretrain", "missing")
    assert list(frame["subject"]) == ["theta_pre"] + ["retina"] * 5 * len(SMOKE.seeds)
    # smoke's CPU constant: epochs × images / (images per second); pretraining images are 1.25 × a site's cost
    train_rate, eval_rate = estimates.CPU_IMAGES_PER_SECOND["smoke"]
    A = SMOKE.paper_a
    assert first["seconds"] == pytest.approx(A.pretrain_epochs * A.pretrain_images * 1.25 / train_rate)
    site = frame.iloc[1]
    test_images = site["images"] * 0  # every site of one seed is scored on the same test set
    assert site["basis"] == "estimated (CPU)" and site["seconds"] > A.epochs * site["images"] / train_rate + test_images


def test_prior_estimates_follow_the_profile(monkeypatch):
    monkeypatch.setattr(estimates, "CPU_IMAGES_PER_SECOND", {"full": (100.0, 200.0)})
    seconds, basis = paper_a_seconds(FULL, 300, 100)
    # 64 epochs of training; the test set evaluated at epochs 16, 32, 48 and 64
    assert seconds == pytest.approx(64 * 300 / 100 + 4 * 100 / 200) and basis == "estimated (CPU)"
    capped = dataclasses.replace(FULL, max_steps=2)  # a dry run: 2 batches of 32 per pass
    assert paper_a_seconds(capped, 300, 100)[0] == pytest.approx(64 * 64 / 100 + 4 * 64 / 200)


def test_full_estimates_come_from_flops_at_a_t4s_rate():
    """ResNet50 is 4.09 GMACs (8.18 GFLOPs) a 224-px image; a T4 is assumed to train 250 of them a second."""
    assert forward_flops("A", "resnet50") == pytest.approx(8.18e9, rel=0.01)
    assert gpu_seconds(3 * forward_flops("A", "resnet50"), "T4") == pytest.approx(1 / GPU_IMAGES_PER_SECOND["T4"])
    seconds, basis = paper_a_seconds(FULL, 250, 0)  # 64 epochs of 250 images, nothing evaluated
    assert seconds == pytest.approx(64 * 250 / GPU_IMAGES_PER_SECOND["T4"]) and basis == "estimated (T4, from FLOPs)"


def test_bad_choices_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    with pytest.raises(MedlibError, match="Paper A has no dataset"):
        plan(FULL, Selection(paper="a", datasets=("derm7pt",), download=False))
    with pytest.raises(MedlibError, match="unknown split"):
        plan(SMOKE, Selection(paper="a", datasets=("retina",), split="random"))
    with pytest.raises(MedlibError, match="per='table'"):
        plan_frame([], per="table")


def test_a_page_sees_runs_per_subject_with_the_time_left():
    def run(subject, role, prior):
        return Run("b", subject, role, 0, role, "smoke", 10, 100, (), family=f"b:{subject}", prior_s=prior)

    planned = [PlannedRun(run("X", "run0", None), RunState("done", 10, 1.0), 0.0, "done"),
               PlannedRun(run("X", "run1", 50.0), RunState("missing"), 50.0, "estimated"),
               PlannedRun(run("Y", "run0", None), RunState("missing"), None, "unknown yet")]
    frame = plan_frame(planned, per="subject")
    assert frame.loc["X", ["runs", "done", "to train", "seconds"]].tolist() == [2, 1, 1, 50.0]
    assert frame.loc["X", "basis"] == "estimated" and frame.loc["X", "time"] == "50 s"
    assert math.isnan(frame.loc["Y", "seconds"]) and frame.loc["Y", "time"] == "?"


def test_full_paper_b_plan_without_cached_runs_is_estimated_from_flops(monkeypatch, tmp_path):
    from medlib.experiments.paper_b import runs
    from medlib.experiments.paper_b.configs import all_configs

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    smoke_pairs = runs._data_for(SMOKE)  # the full profile's derm7pt is not here: its fingerprint is all the plan reads
    monkeypatch.setattr(runs, "_data_for", lambda P, overrides=None: smoke_pairs)
    ammfm = next(c for c in all_configs(FULL) if not c.single_modal)
    row = plan_frame(plan(FULL, Selection(paper="b", configs=(ammfm.name,))), per="subject").iloc[0]

    B = FULL.paper_b
    # by hand: 3 passes per trained pair and epoch, 1 per validated pair, TTA views + the last model on valid+test
    validations = len(set(range(B.eval_every, B.epochs + 1, B.eval_every)) | {B.epochs})
    pairs = 413 * B.epochs * 3 + 203 * validations + (B.tta_views + 1) * (203 + 395)
    seconds = pairs * forward_flops("B", ammfm.name) / (GPU_IMAGES_PER_SECOND["T4"] * 3 * forward_flops("A", "resnet50"))
    assert row["basis"] == "estimated (T4, from FLOPs)"
    assert row["seconds"] == pytest.approx(B.n_runs * seconds)
    assert row["seconds"] == pytest.approx(B.n_runs * gpu_seconds(pairs * forward_flops("B", ammfm.name), "T4"))
    assert row["done"] == 0 and row["to train"] == B.n_runs


def test_smoke_paper_b_plan_says_when_nothing_is_known(monkeypatch, tmp_path):
    from medlib.experiments.paper_b.configs import all_configs

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    ammfm = next(c for c in all_configs(SMOKE) if not c.single_modal)
    row = plan_frame(plan(SMOKE, Selection(paper="b", configs=(ammfm.name,), seeds=(7,))), per="subject").iloc[0]
    assert row["basis"] == "unknown yet" and math.isnan(row["seconds"])
    seeds = plan_frame(plan(SMOKE, Selection(paper="b", configs=(ammfm.name,), seeds=(7,))))["seed"]
    assert list(seeds) == list(range(7, 7 + SMOKE.paper_b.n_runs))  # runs count from the page's seed


def test_theta_pre_is_kept_under_medlib_home_not_the_node_local_data_cache(monkeypatch, tmp_path):
    from medlib import pretrain

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDLIB_DATA_HOME", str(tmp_path / "node-local"))
    path = pretrain.pretrained_backbone_file(SMOKE.paper_a)
    assert path.parent == (tmp_path / "home" / "artifacts" / "pretrained").resolve()
    assert pretrain.pretrain_key(SMOKE.paper_a) in path.name and not path.exists()  # nothing trained
    assert pretrain.pretrained_backbone_file(SMOKE.paper_a, seed=1) != path
    with pytest.raises(MedlibError, match="pretrain_epochs=0"):
        pretrain.pretrained_backbone_file(FULL.paper_a)
