import dataclasses

import pytest

from medlib.profiles import FULL, SMOKE, get_profile


def test_auto_follows_environment(monkeypatch):
    monkeypatch.setenv("MEDLIB_PROFILE", "full")
    assert get_profile("auto") is FULL
    monkeypatch.setenv("MEDLIB_PROFILE", "smoke")
    assert get_profile("auto") is SMOKE


def test_auto_without_environment_uses_hardware(monkeypatch):
    import torch

    monkeypatch.delenv("MEDLIB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile("auto") is SMOKE
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile("auto") is FULL


def test_unknown_profile_says_what_is_expected():
    with pytest.raises(ValueError, match="smoke"):
        get_profile("fast")


def test_profiles_are_frozen_and_full_has_the_papers_settings():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SMOKE.paper_a.lr = 1.0  # type: ignore[misc]
    a, b = FULL.paper_a, FULL.paper_b
    assert (a.arch, a.lr, a.epochs, a.batch_size, a.seed, a.n_sites, a.lam) == ("resnet50", 1e-5, 64, 32, 3315, 4, 0.5)
    assert (b.batch_size, b.epochs, b.swa_epochs, b.image_size, b.tta_views) == (24, 250, 50, 224, 6)
    assert (b.clinical, b.dermoscopy) == ("mobilenet_v3_small", "swin_v2_t")
    assert FULL.data_source == "real" and SMOKE.data_source == "synthetic"


def test_a_dry_run_keeps_the_code_paths_and_caps_the_work(monkeypatch):
    from medlib.profiles import FULL, dry_run, get_profile

    d = dry_run(FULL)
    # what the full profile runs: the real architectures at the real image size
    assert (d.paper_a.arch, d.paper_a.image_size) == (FULL.paper_a.arch, FULL.paper_a.image_size) == ("resnet50", 224)
    assert (d.paper_b.clinical, d.paper_b.dermoscopy, d.paper_b.backbone_size, d.paper_b.image_size) == \
        (FULL.paper_b.clinical, FULL.paper_b.dermoscopy, "full", 224)
    # what it caps: steps, epochs, seeds, runs; nothing downloaded
    assert d.max_steps == 1 and FULL.max_steps is None
    assert (d.paper_a.epochs, d.paper_b.epochs, d.paper_b.n_runs, d.seeds) == (1, 2, 1, (FULL.seeds[0],))
    assert d.paper_a.weights == "" and not d.paper_b.pretrained and d.data_source == "synthetic"
    # it says so everywhere, and never writes where a real full run's results are read
    assert (d.label, d.result_tag, FULL.result_tag) == ("full (dry run)", "full-dry-run", "full")
    assert dry_run(d) is d
    assert get_profile("full", dry=True) == d and get_profile(FULL, dry=True) == d


def test_the_dry_run_environment_is_read_by_the_entry_points_only(monkeypatch):
    from medlib.notebook import start
    from medlib.profiles import dry_run

    monkeypatch.setenv("MEDLIB_DRY_RUN", "1")
    assert get_profile("full") is FULL  # the library never rewrites a profile behind its caller
    assert start("full", show=False).profile == dry_run(FULL)
    monkeypatch.setenv("MEDLIB_DRY_RUN", "0")
    assert start("full", show=False).profile is FULL
