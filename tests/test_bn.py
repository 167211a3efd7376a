"""Restoring BatchNorm statistics after a merge (Paper A §3.5) with hand-checkable numbers."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medlib.bn import BNMoments, InterleavedLoader, pool_moments, restore_batchnorm
from medlib.errors import MedlibError


def one_bn() -> nn.Module:
    return nn.Sequential(nn.BatchNorm1d(1))


def batches(*rows, labels=False):
    """A list of batches, each a (n, 1) tensor (with zero labels when asked)."""
    out = [torch.tensor(r, dtype=torch.float32).view(-1, 1) for r in rows]
    return [(x, torch.zeros(len(x), dtype=torch.long)) for x in out] if labels else out


def test_site_stats_weights_samples_update_bn_weights_batches():
    site_a, site_b = batches([1, 2, 3]), batches([10, 12])
    # union [1, 2, 3, 10, 12]: mean 28/5 = 5.6, unbiased variance 101.2/4 = 25.3
    pooled = restore_batchnorm(one_bn(), [site_a, site_b], "site_stats")[0]
    assert pooled.running_mean.item() == pytest.approx(5.6, abs=1e-5)
    assert pooled.running_var.item() == pytest.approx(25.3, abs=1e-5)
    # update_bn: mean of the batch means (2 + 11)/2 and of the batch variances (1 + 2)/2
    recomputed = restore_batchnorm(one_bn(), [site_a, site_b], "recompute_stats")[0]
    assert recomputed.running_mean.item() == pytest.approx(6.5, abs=1e-5)
    assert recomputed.running_var.item() == pytest.approx(1.5, abs=1e-5)


def test_site_stats_equals_recompute_stats_over_the_pooled_data_in_one_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    sites = [torch.randn(n, 3, 6, 6) * (i + 1) + i for i, n in enumerate((5, 9, 3))]
    model(sites[0])  # materialise the lazy layer
    loaders = [[(x[:4], None), (x[4:], None)] if len(x) > 4 else [x] for x in sites]
    pooled = restore_batchnorm(model, loaders, "site_stats")
    central = restore_batchnorm(model, [[torch.cat(sites)]], "recompute_stats")
    assert torch.allclose(pooled[1].running_mean, central[1].running_mean, atol=1e-5)
    assert torch.allclose(pooled[1].running_var, central[1].running_var, rtol=1e-5, atol=1e-5)


def test_site_stats_matches_a_direct_computation_over_all_data_at_every_layer():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 6), nn.BatchNorm1d(6),
    )
    with torch.no_grad():  # a "merged" model whose statistics belong to nobody
        for bn in (model[1], model[4], model[9]):
            bn.running_mean.uniform_(-3, 3)
            bn.running_var.uniform_(0.1, 5)
    sites = [torch.randn(n, 3, 5, 5) + shift for n, shift in ((7, 0.0), (4, 2.0), (10, -1.0))]
    loaders = [list(torch.split(x, 3)) for x in sites]
    restored = restore_batchnorm(model, loaders, "site_stats")

    inputs = {}
    hooks = [restored[i].register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0]))
             for i in (1, 4, 9)]
    with torch.no_grad():
        restored.eval()(torch.cat(sites))  # all data at once, in eval mode
    for h in hooks:
        h.remove()
    for i in (1, 4, 9):
        x = inputs[i].transpose(0, 1).reshape(inputs[i].shape[1], -1).double()
        assert torch.allclose(restored[i].running_mean.double(), x.mean(1), atol=1e-5), i
        assert torch.allclose(restored[i].running_var.double(), x.var(1, unbiased=True), rtol=1e-5, atol=1e-5), i


def test_pool_moments_by_hand():
    a = BNMoments(3, torch.tensor([6.0], dtype=torch.float64), torch.tensor([14.0], dtype=torch.float64))
    b = BNMoments(2, torch.tensor([22.0], dtype=torch.float64), torch.tensor([244.0], dtype=torch.float64))
    mean, var = pool_moments([a, b])
    assert mean.item() == pytest.approx(5.6)
    assert var.item() == pytest.approx(25.3)


def test_finetune_epoch_is_one_interleaved_epoch_of_weighted_adam():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    make = lambda n: (torch.randn(n, 3), torch.randint(0, 2, (n,)))  # noqa: E731
    site_a = [make(4), make(4)]
    site_b = [make(5)]
    weights = torch.tensor([0.25, 2.0])
    restored = restore_batchnorm(model, [site_a, site_b], "finetune_epoch", lr=1e-2, class_weights=weights)

    manual = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(manual.parameters(), lr=1e-2)
    for x, y in (site_a[0], site_b[0], site_a[1]):  # round-robin over the sites
        optimizer.zero_grad()
        F.cross_entropy(manual(x), y, weight=weights).backward()
        optimizer.step()
    for (k, v), w in zip(restored.state_dict().items(), manual.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k
    assert not torch.equal(restored[0].weight, model[0].weight)
    assert not restored.training


def test_inputs_untouched_and_labels_optional():
    model = one_bn()
    with torch.no_grad():
        model[0].running_mean.fill_(7.0)
    with_labels = batches([1, 2, 3], labels=True)
    for method in ("recompute_stats", "site_stats"):
        restored = restore_batchnorm(model, [with_labels], method)  # a list of loaders
        assert restored[0].running_mean.item() == pytest.approx(2.0, abs=1e-6)
        assert model[0].running_mean.item() == 7.0 and restored is not model
    with pytest.raises(MedlibError, match="needs labels"):
        restore_batchnorm(model, [batches([1, 2, 3])], "finetune_epoch")
    with pytest.raises(MedlibError, match="unknown restore method"):
        restore_batchnorm(model, [with_labels], "reset")
    with pytest.raises(MedlibError, match="at least one loader"):
        restore_batchnorm(model, [], "site_stats")


def test_interleaved_loader_round_robin():
    loader = InterleavedLoader([[1, 2, 3], ["a"], [10, 20]])
    assert list(loader) == [1, "a", 10, 2, 20, 3]
    assert len(loader) == 6


def test_one_epoch_at_momentum_0_1_keeps_most_merged_statistics_cumulative_replaces_them():
    # One BN layer, lr tiny so the weights barely move: only the running statistics matter.
    model = one_bn()
    model[0].running_mean.fill_(100.0)  # the "merged" statistic
    site = batches([1, 3], [5, 7], [9, 11], labels=True)  # batch means 2, 6, 10
    weak = restore_batchnorm(model, [site], "finetune_epoch", lr=1e-12)[0]
    # exponential average at momentum 0.1: 100 → 90.2 → 81.78 → 74.602; 0.9³ = 72.9% of 100 remains
    assert weak.running_mean.item() == pytest.approx(0.9**3 * 100 + 0.1 * (0.81 * 2 + 0.9 * 6 + 10), abs=1e-3)
    strong = restore_batchnorm(model, [site], "finetune_epoch", lr=1e-12, cumulative_stats=True)[0]
    assert strong.running_mean.item() == pytest.approx(6.0, abs=1e-4)  # (2 + 6 + 10) / 3
    assert strong.momentum == 0.1 and model[0].running_mean.item() == 100.0
    with pytest.raises(MedlibError, match="cumulative_stats"):
        restore_batchnorm(model, [site], "recompute_stats", cumulative_stats=True)
