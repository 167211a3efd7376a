r"""Federated baselines from Paper A's θ_pre on medlib's ``fit``: FedAvg, FedProx, FedBN (Paper A never measures them).

Every site trains ``rounds × local_epochs`` epochs with Paper A's optimiser; after each round the server
averages what the sites send (:func:`average`, checked in the tests against Flower's public ``aggregate``).

``fedavg``   example-weighted mean of every tensor, BatchNorm statistics included (McMahan et al., 2017).
``fedprox``  FedAvg plus :math:`\frac{\mu}{2}\lVert w - w^t\rVert^2` in each site's loss (Li et al., 2020).
``fedbn``    FedAvg with each site's BatchNorm kept at home (Li et al., 2021); it has no single model, so it
             is scored as the mean over the sites' models (global weights, own BN) on the shared test set.

A site's randomness depends on (seed, site, round) only, so a federation is reproducible in one process.
FedAvg with one round and equal sites *is* Params Mean before BatchNorm restoration (tested).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from medlib.bn import batchnorm_layers
from medlib.errors import MedlibError
from medlib.runtime import seed_everything
from medlib.train import TrainConfig, fit, predict
from medlib.train.loop import weighted_cross_entropy

__all__ = ["STRATEGIES", "FederatedSite", "FederatedResult", "run_federated", "average", "batchnorm_keys",
           "rounds_grid"]

STRATEGIES = ("fedavg", "fedprox", "fedbn")
_ROUND_SEED_STRIDE = 1000  # round r trains with seed + 1000 (r − 1): round 1 is the one-shot site run


@dataclass
class FederatedSite:
    """One hospital: ``loader(seed)`` its training batches in ``seed``'s order, ``n_examples`` its weight in the
    average, ``test_loader()`` the shared test set (FedBN's per-site scores)."""

    loader: Callable[[int], object]
    n_examples: int
    class_weights: torch.Tensor | None = None
    test_loader: Callable[[], object] | None = None


@dataclass
class FederatedResult:
    """The outcome of one federation: the final global model and what it cost."""
    strategy: str
    rounds: int
    local_epochs: int
    model: nn.Module  # the averaged tensors (FedBN: with θ_pre's BN, see site_models)
    site_models: list[nn.Module] = field(default_factory=list)  # FedBN: global weights + each site's BN
    site_accuracies: list[float] = field(default_factory=list)  # FedBN: per-site test accuracy (%)
    seconds: float = 0.0

    @property
    def accuracy(self) -> float | None:
        """FedBN: the mean of the sites' test accuracies; None for a single global model."""
        return float(np.mean(self.site_accuracies)) if self.site_accuracies else None


def batchnorm_keys(model: nn.Module) -> set[str]:
    """State-dict keys of every BatchNorm layer (affine parameters and running statistics)."""
    layers = batchnorm_layers(model)
    return {k for k in model.state_dict() if k.rsplit(".", 1)[0] in layers}


def rounds_grid(epochs: int) -> tuple[int, ...]:
    """Round counts R that split ``epochs`` evenly: 1, 4, 16, … and ``epochs`` (64 → 1, 4, 16, 64; 4 → 1, 4)."""
    if epochs < 1:
        raise MedlibError(f"epochs must be >= 1 to split into rounds, got {epochs}")
    grid, r = {1, epochs}, 4
    while r <= epochs:
        if epochs % r == 0:
            grid.add(r)
        r *= 4
    return tuple(sorted(grid))


def average(states: Sequence[dict[str, torch.Tensor]], n_examples: Sequence[int]) -> dict[str, torch.Tensor]:
    """FedAvg's server step: each tensor's example-weighted mean over the sites (float64; integer counters rounded)."""
    total = float(sum(n_examples))
    out = {}
    for key, first in states[0].items():
        mean = sum(state[key].double() * (n / total) for state, n in zip(states, n_examples))
        if not torch.isfinite(mean).all():
            raise MedlibError(f"federated average: {key!r} is not finite; a site's training diverged (try a lower lr)")
        out[key] = (mean if first.is_floating_point() else mean.round()).to(first.dtype)
    return out


def _proximal_loss(model: nn.Module, mu: float, class_weights, device):
    """Weighted cross-entropy + μ/2 ‖w − w_global‖² over the trainable parameters (FedProx)."""
    cross_entropy = weighted_cross_entropy(class_weights, device)
    params = [p for p in model.parameters() if p.requires_grad]
    anchor = [p.detach().clone().to(device) for p in params]

    def loss_fn(out, y):
        loss = cross_entropy(out, y)
        if mu:
            loss = loss + 0.5 * mu * sum((p - a).square().sum() for p, a in zip(params, anchor))
        return loss

    return loss_fn


def _with(model: nn.Module, local: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with a site's own tensors (FedBN's BatchNorm state) loaded over it."""
    out = copy.deepcopy(model)
    out.load_state_dict(local, strict=False)
    return out


def _accuracy(model: nn.Module, loader, device: str, max_steps: int | None) -> float:
    probs, labels = predict(model, loader, device, max_steps=max_steps)
    return 100.0 * float(np.mean(np.isfinite(probs).all(axis=1) & (probs.argmax(axis=1) == labels)))


def run_federated(strategy: str, pretrained: nn.Module, sites: Sequence[FederatedSite], *, rounds: int,
                  local_epochs: int, lr: float, seed: int = 0, mu: float = 0.01, device: str | torch.device = "cpu",
                  max_steps: int | None = None) -> FederatedResult:
    """``strategy`` for ``rounds`` rounds of ``local_epochs`` epochs per site from ``pretrained``, Adam at ``lr``.

    ``mu`` is FedProx's proximal weight. Returns the global model on the CPU and, for FedBN, each site's model
    and test accuracy.
    """
    if strategy not in STRATEGIES:
        raise MedlibError(f"unknown federated strategy {strategy!r}; expected one of {STRATEGIES}")
    if rounds < 1 or local_epochs < 1:
        raise MedlibError(f"rounds and local_epochs must be >= 1, got rounds={rounds}, local_epochs={local_epochs}")
    if len(sites) < 1:
        raise MedlibError("run_federated needs at least one site")
    fedbn, device = strategy == "fedbn", str(device)
    if fedbn and any(s.test_loader is None for s in sites):
        raise MedlibError("FedBN evaluates each site's model on the shared test set: "
                          "give every FederatedSite a test_loader")
    started = time.perf_counter()
    server = copy.deepcopy(pretrained).cpu().eval()
    kept_home = batchnorm_keys(server) if fedbn else set()
    local = [{} for _ in sites]  # FedBN: each site's BN state between rounds (empty: θ_pre's)
    for r in range(rounds):
        round_seed = seed + _ROUND_SEED_STRIDE * r
        sent = []
        for site, own in zip(sites, local):
            model = _with(server, own)
            cfg = TrainConfig(lr=lr, epochs=local_epochs, seed=round_seed, class_weights=site.class_weights,
                              device=device, log_every=0, max_steps=max_steps)
            seed_everything(round_seed)
            loss_fn = _proximal_loss(model, mu if strategy == "fedprox" else 0.0, site.class_weights, device)
            fit(model, site.loader(round_seed), cfg, loss_fn=loss_fn)
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            own.update({k: state[k] for k in kept_home})
            sent.append({k: v for k, v in state.items() if k not in kept_home})
        server.load_state_dict(average(sent, [s.n_examples for s in sites]), strict=not fedbn)
    out = FederatedResult(strategy, rounds, local_epochs, server)
    if fedbn:
        out.site_models = [_with(server, own).eval() for own in local]
        out.site_accuracies = [_accuracy(m, site.test_loader(), device, max_steps)
                               for m, site in zip(out.site_models, sites)]
        for m in out.site_models:
            m.cpu()
    out.seconds = time.perf_counter() - started
    return out
