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
