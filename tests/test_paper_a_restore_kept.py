"""The share of merged BatchNorm statistics a restoring epoch keeps, measured from the restored model."""

import copy
import math

import pytest
import torch
from torch import nn

from medlib.bn import restore_batchnorm
from medlib.experiments.paper_a.restore import averaged_stats_kept


def test_a_planted_mixture_is_recovered():
    before, fresh = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    before.running_mean.copy_(torch.tensor([4.0, -2.0, 8.0]))
    before.running_var.copy_(torch.tensor([9.0, 0.5, 3.0]))
    fresh.running_mean.copy_(torch.tensor([1.0, 1.0, 0.0]))
    restored = copy.deepcopy(fresh)
    for name in ("running_mean", "running_var"):
        getattr(restored, name).copy_(0.3 * getattr(before, name) + 0.7 * getattr(fresh, name))
    assert averaged_stats_kept(before, restored, fresh) == pytest.approx(0.3)
    assert averaged_stats_kept(before, fresh, fresh) == pytest.approx(0.0)
    assert averaged_stats_kept(before, before, fresh) == pytest.approx(1.0)


def test_one_epoch_of_identical_batches_keeps_0_9_to_the_n():
    # identical batches and weights that barely move (lr 1e-12): the momentum-0.1 average keeps exactly 0.9ⁿ of the old statistics
    model = nn.Sequential(nn.BatchNorm1d(2))
    model[0].running_mean.fill_(50.0)
    model[0].running_var.fill_(20.0)
    x = torch.tensor([[1.0, -3.0], [3.0, 5.0], [2.0, 1.0]])
    site = [(x, torch.zeros(3, dtype=torch.long))] * 4
    weak = restore_batchnorm(model, [site], "finetune_epoch", lr=1e-12)
    fresh = restore_batchnorm(model, [site], "finetune_epoch", lr=1e-12, cumulative_stats=True)
    assert averaged_stats_kept(model, weak, fresh) == pytest.approx(0.9**4, abs=1e-5)


def test_identical_before_and_fresh_statistics_leave_the_share_undefined():
    same = nn.BatchNorm1d(2)
    assert math.isnan(averaged_stats_kept(same, copy.deepcopy(same), copy.deepcopy(same)))
