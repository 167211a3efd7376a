"""Validation every k epochs and after the last, on the evaluation path; cuDNN autotuning on CUDA."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medlib.errors import MedlibError
from medlib.profiles import FULL, SMOKE
from medlib.train import TrainConfig, fit
from medlib.train.loop import tune_for
from toy_training import learnable


def _loaders():
    ds = learnable(48)
    x, y = ds.tensors
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)], [(x[:16], y[:16])]


def test_validation_every_k_epochs_and_after_the_last():
    torch.manual_seed(0)
    train, val = _loaders()
    history = fit(nn.Linear(6, 3), train, TrainConfig(lr=1e-2, epochs=7, device="cpu", log_every=0, eval_every=3),
                  val_loader=val)
    assert history.evaluated_epochs() == [3, 6, 7]
    assert all(("val_loss" in r) == (r["epoch"] in (3, 6, 7)) for r in history.records)
    assert history.to_frame()["val_loss"].notna().sum() == 3
    with pytest.raises(MedlibError, match="eval_every=0"):
        TrainConfig(lr=1e-2, epochs=1, eval_every=0)


def test_validation_batches_take_the_evaluation_path():
    """The training path marks its batches; validation must never see them (issue 19's bug)."""
    train, val = _loaders()
    paths = []

    def train_path(batch, device):
        paths.append("train")
        return batch[0] + 100.0, batch[1]  # an "augmentation" no evaluation may apply

    def eval_path(batch, device):
        paths.append("eval")
        return batch

    cfg = TrainConfig(lr=1e-2, epochs=1, device="cpu", log_every=0)
    fit(nn.Linear(6, 3), train, cfg, val_loader=val, batch_to_device=train_path, val_batch_to_device=eval_path)
    assert paths == ["train"] * 3 + ["eval"]


def test_evaluation_costs_at_most_three_percent_of_the_full_profiles_training():
    """A validation image costs a forward pass, a training image forward + backward ≈ 3 forwards.

    Paper B: 413 training and 203 validation cases of derm7pt. Paper A: a site trains on
    (1 - test_fraction) / n_sites of a dataset and is tested on test_fraction of it (Retina:
    120 and 120 of 601 images), the worst ratio of the part (the full trainings see 4x more).
    """
    def share(train_images, eval_images, epochs, every):
        evaluations = len(set(range(every, epochs + 1, every)) | {epochs})
        return evaluations * eval_images / (3 * train_images * epochs + evaluations * eval_images)

    B, A = FULL.paper_b, FULL.paper_a
    assert share(413, 203, B.epochs, B.eval_every) <= 0.03  # 25 evaluations: 1.6 %
    site, test = 601 * (1 - A.test_fraction) / A.n_sites, 601 * A.test_fraction
    assert share(site, test, A.epochs, A.eval_every) <= 0.03  # 4 evaluations: 2.0 %
    assert share(site, test, A.epochs, 1) > 0.2  # every epoch, as before: 25 %
    assert share(413, 203, B.epochs, 1) > 0.03  # every epoch, as before: 14 %
    assert SMOKE.paper_b.eval_every == SMOKE.paper_a.eval_every == 1  # smoke's short curves keep every point


def test_cuda_training_autotunes_convolutions():
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        tune_for(torch.device("cpu"))
        assert torch.backends.cudnn.benchmark is False
        tune_for(torch.device("cuda"))  # sets the flag; needs no GPU
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before
