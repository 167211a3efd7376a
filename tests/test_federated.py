"""Federated baselines (medlib.federated): the server step is Flower's FedAvg; FedAvg is Params Mean at one round;
FedBN keeps BN home."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from medlib.errors import MedlibError
from medlib.federated import FederatedSite, average, batchnorm_keys, rounds_grid, run_federated
from medlib.runtime import seed_everything
from medlib.train import TrainConfig, class_weights_from_labels, fit, make_loader
from medlib.vectors import merge


class Net(nn.Module):
    """conv → BN → ReLU → pooled head: the smallest model with every kind of state Paper A merges."""

    new_layers = ("head",)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _sites(n_sites=4, per_site=16, seed=0, shift=True, sizes=None):
    g = torch.Generator().manual_seed(seed)
    sites = []
    for k, per_site in enumerate(sizes or [per_site] * n_sites):
        x = torch.randn(per_site, 3, 6, 6, generator=g) + (float(k) if shift else 0.0)  # per-site acquisition shift
        y = torch.randint(0, 3, (per_site,), generator=g)
        y[:3] = torch.arange(3)  # every class present at every site
        ds = torch.utils.data.TensorDataset(x, y)
        test = torch.utils.data.TensorDataset(torch.randn(12, 3, 6, 6, generator=g), torch.randint(0, 3, (12,), generator=g))
        sites.append(FederatedSite(
            loader=lambda s, ds=ds: make_loader(ds, 8, shuffle=True, seed=s),
            n_examples=per_site,
            class_weights=class_weights_from_labels(y.numpy(), 3),
            test_loader=lambda test=test: make_loader(test, 6, shuffle=False),
        ))
    return sites


def _pretrained():
    torch.manual_seed(0)
    return Net().eval()


def _finetuned(pre, sites, epochs, lr, seed):
    """Each site fine-tunes θ_pre alone, as Paper A's sites do (written independently of medlib.federated)."""
    out = []
    for site in sites:
        model = copy.deepcopy(pre)
        seed_everything(seed)
        fit(model, site.loader(seed), TrainConfig(lr=lr, epochs=epochs, seed=seed, class_weights=site.class_weights,
                                                  device="cpu", log_every=0))
        out.append(model.eval())
    return out


def test_fedavg_one_round_all_epochs_equals_params_mean():
    pre, sites = _pretrained(), _sites()
    epochs, lr, seed = 3, 1e-2, 5
    fed = run_federated("fedavg", pre, sites, rounds=1, local_epochs=epochs, lr=lr, seed=seed)

    mean = merge(pre, _finetuned(pre, sites, epochs, lr, seed), "params_mean")  # the one-shot path

    moved = max(float((a - b).abs().max()) for a, b in zip(mean.state_dict().values(), pre.state_dict().values())
                if a.is_floating_point())
    assert moved > 1e-3  # training really changed the weights, so equality below is not trivial
    got, want = fed.model.state_dict(), mean.state_dict()
    for key, value in want.items():
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value, atol=1e-6, rtol=0, msg=key)
    assert fed.strategy == "fedavg" and fed.rounds == 1 and fed.accuracy is None


def test_fedbn_keeps_batchnorm_local_and_reports_each_sites_accuracy():
    pre, sites = _pretrained(), _sites()
    fed = run_federated("fedbn", pre, sites, rounds=2, local_epochs=1, lr=1e-2, seed=0)
    bn = batchnorm_keys(pre)
    assert bn == {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    # nothing of BN reached the server: the global model's BN is still θ_pre's
    for key in bn:
        torch.testing.assert_close(fed.model.state_dict()[key], pre.state_dict()[key], atol=0, rtol=0)
    assert not torch.equal(fed.model.conv.weight, pre.conv.weight)
    # each site has its own BN state (the sites' inputs are shifted by k), around the shared weights
    means = [m.bn.running_mean for m in fed.site_models]
    assert len(means) == 4
    assert min(float((means[a] - means[b]).abs().max()) for a in range(4) for b in range(a)) > 1e-2
    for m in fed.site_models:
        torch.testing.assert_close(m.conv.weight, fed.model.conv.weight, atol=0, rtol=0)
    assert len(fed.site_accuracies) == 4 and all(0 <= a <= 100 for a in fed.site_accuracies)
    assert fed.accuracy == pytest.approx(np.mean(fed.site_accuracies))
    # each reported accuracy is that site's model on the shared test set
    x, y = sites[0].test_loader().dataset.tensors
    with torch.no_grad():
        acc0 = 100.0 * float((fed.site_models[0](x).argmax(1) == y).float().mean())
    assert fed.site_accuracies[0] == pytest.approx(acc0)


def test_fedprox_proximal_term_holds_sites_near_the_global_model():
    pre, sites = _pretrained(), _sites()

    def distance(model):
        return sum(float((a.detach() - b).square().sum()) for a, b in zip(model.parameters(), pre.parameters()))

    kw = dict(rounds=1, local_epochs=3, lr=3e-2, seed=1)
    plain = run_federated("fedavg", pre, sites, **kw)
    prox0 = run_federated("fedprox", pre, sites, mu=0.0, **kw)
    strong = run_federated("fedprox", pre, sites, mu=10.0, **kw)
    for key, value in plain.model.state_dict().items():  # μ = 0: FedProx is FedAvg
        torch.testing.assert_close(prox0.model.state_dict()[key], value, atol=1e-6, rtol=0)
    assert distance(strong.model) < 0.5 * distance(plain.model)


def test_rounds_grid_splits_the_local_epochs_evenly():
    assert rounds_grid(64) == (1, 4, 16, 64)
    assert rounds_grid(8) == (1, 4, 8)
    assert rounds_grid(1) == (1,)
    with pytest.raises(MedlibError, match="epochs must be >= 1"):
        rounds_grid(0)


def test_bad_requests_are_clear_errors():
    pre, sites = _pretrained(), _sites(n_sites=2)
    with pytest.raises(MedlibError, match="unknown federated strategy 'fedsgd'"):
        run_federated("fedsgd", pre, sites, rounds=1, local_epochs=1, lr=1e-3)
    with pytest.raises(MedlibError, match="rounds and local_epochs must be >= 1"):
        run_federated("fedavg", pre, sites, rounds=0, local_epochs=1, lr=1e-3)
    no_test = [FederatedSite(s.loader, s.n_examples) for s in sites]
    with pytest.raises(MedlibError, match="test_loader"):
        run_federated("fedbn", pre, no_test, rounds=1, local_epochs=1, lr=1e-3)


def test_server_average_is_flowers_fedavg_aggregate():
    # hand-computed: counts 1, 3 weigh the sites 1/4 and 3/4
    a = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(2)}
    b = {"w": torch.tensor([8.0, -4.0]), "n": torch.tensor(6)}
    got = average([a, b], [1, 3])
    assert torch.equal(got["w"], torch.tensor([6.0, -2.0])) and got["n"].dtype == torch.int64 and int(got["n"]) == 5

    # a whole round with unequal sites: our FedAvg model against Flower's public aggregation of the site models
    aggregate = pytest.importorskip("flwr.server.strategy.aggregate").aggregate
    pre, sites = _pretrained(), _sites(sizes=[8, 16, 24, 40])
    fed = run_federated("fedavg", pre, sites, rounds=1, local_epochs=2, lr=1e-2, seed=3)
    keys = [k for k, v in pre.state_dict().items() if v.is_floating_point()]
    finetuned = _finetuned(pre, sites, 2, 1e-2, 3)
    results = [([m.state_dict()[k].numpy() for k in keys], s.n_examples) for m, s in zip(finetuned, sites)]
    unweighted = merge(pre, finetuned, "params_mean").state_dict()
    for key, want in zip(keys, aggregate(results)):
        torch.testing.assert_close(fed.model.state_dict()[key], torch.from_numpy(want), atol=1e-6, rtol=0, msg=key)
    # the weighting matters here: the unweighted mean is a different model
    assert max(float((fed.model.state_dict()[k] - unweighted[k]).abs().max()) for k in keys) > 1e-4


def test_a_diverged_site_stops_the_average_with_the_key_named():
    good, bad = {"conv.weight": torch.ones(2)}, {"conv.weight": torch.tensor([1.0, float("nan")])}
    with pytest.raises(MedlibError, match="'conv.weight' is not finite"):
        average([good, bad], [1, 1])
