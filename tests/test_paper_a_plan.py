"""Part A's plan: what a session will train, what is cached, and the time, before anything trains."""

import dataclasses

import pandas as pd
import pytest

from medlib.errors import MedlibError
from medlib.experiments.paper_a import format_duration, plan, training_plan
from medlib.profiles import FULL, SMOKE


def test_durations_read_as_a_reader_wants_them():
    assert [format_duration(s) for s in (40, 719, 7500, float("nan"))] == ["40 s", "12 min", "2 h 05 min", "?"]


def test_a_dataset_not_downloaded_lists_every_model_to_train_and_downloads_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    monkeypatch.setattr(plan, "_on_disk", lambda name, P: None)
    frame = training_plan(["retina"], [3315, 3316], FULL)
    assert list(frame["role"]) == ["site1", "site2", "site3", "site4", "full"] * 2
    assert not frame["cached"].any() and (frame["epochs"] == 64).all()
    assert list(frame["seed"]) == [3315] * 5 + [3316] * 5


def test_smoke_without_theta_pre_plans_the_pretraining_first(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    monkeypatch.setattr(plan, "_on_disk", lambda name, P: None)
    frame = training_plan(None, None, SMOKE)
    first = frame.iloc[0]
    assert first["role"] == "theta_pre" and not first["cached"]
    assert set(frame["dataset"]) == {"(all)", *SMOKE.paper_a.datasets} and set(frame["seed"]) >= set(SMOKE.seeds)
    # the per-profile constant: epochs × images / (images per second)
    train_rate, _ = plan.IMAGES_PER_SECOND["smoke"]
    A = SMOKE.paper_a
    assert first["seconds"] == pytest.approx(A.pretrain_epochs * A.pretrain_images * 1.25 / train_rate)


def test_estimates_follow_measured_epoch_times(monkeypatch):
    monkeypatch.setattr(plan, "IMAGES_PER_SECOND", {"full": (100.0, 200.0)})
    seconds, basis = plan._estimate(FULL, "retina", 300, 100, {})
    # 64 epochs of training; the test set evaluated at epochs 16, 32, 48 and 64
    assert seconds == pytest.approx(64 * 300 / 100 + 4 * 100 / 200) and basis.startswith("estimated")
    seconds, basis = plan._estimate(FULL, "retina", 300, 100, {"retina": 0.01})  # 10 ms per image-epoch
    assert seconds == pytest.approx(0.01 * 300 * 64) and basis.startswith("measured")
    capped = dataclasses.replace(FULL, max_steps=2)  # a dry run: 2 batches of 32 per pass
    assert plan._estimate(capped, "retina", 300, 100, {})[0] == pytest.approx(64 * 64 / 100 + 4 * 64 / 200)


def test_full_estimates_come_from_flops_at_a_t4s_rate():
    """ResNet50 is 4.09 GMACs (8.18 GFLOPs) a 224-px image; a T4 is assumed to train 250 of them a second."""
    from medlib.estimates import GPU_IMAGES_PER_SECOND, forward_flops, gpu_seconds

    assert forward_flops("A", "resnet50") == pytest.approx(8.18e9, rel=0.01)
    assert gpu_seconds(3 * forward_flops("A", "resnet50"), "T4") == pytest.approx(1 / GPU_IMAGES_PER_SECOND["T4"])
    seconds, basis = plan._estimate(FULL, "retina", 250, 0, {})  # 64 epochs of 250 images, nothing evaluated
    assert seconds == pytest.approx(64 * 250 / GPU_IMAGES_PER_SECOND["T4"]) and basis == "estimated (T4, from FLOPs)"


def test_bad_choices_are_named():
    with pytest.raises(MedlibError, match="unknown Paper A dataset"):
        training_plan(["derm7pt"], None, FULL)
    with pytest.raises(MedlibError, match="unknown split"):
        training_plan(["retina"], None, FULL, split="random")


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
