"""Restore the model state after merging (Paper A §3.5): the BatchNorm running statistics.

A merged model's BN running mean/variance belong to none of its weights: θ_mix's layers
produce activations with other statistics than any site's model did. The paper restores the
state by "training the ensemble model on the four datasets for one epoch" (§4.1). Three
methods, from most to least data exchanged:

``finetune_epoch``
    the paper's: one epoch of training (Adam, weighted cross-entropy) on the given sites'
    labelled data. Changes the weights too, and needs labels.
``recompute_stats``
    reset the running statistics and recompute them by forward passes only
    (:func:`torch.optim.swa_utils.update_bn`): no labels, no gradients, weights untouched.
    ``update_bn`` runs the network in training mode (every BN normalises with its batch's
    statistics) and keeps the cumulative average of the per-batch mean and unbiased variance,
    weighting every *batch* equally.
``site_stats``
    federated statistics: each site runs forward passes on its own data and shares, per BN
    layer and channel, only ``(count, Σx, Σx²)``; pooled, they give the mean and variance
    over the union of all sites' data, *exactly* as if the data had been pooled, weighting
    every *sample* equally. Done layer by layer in forward order with the network in eval
    mode (earlier layers already use their pooled statistics), so afterwards every BN layer,
    in eval mode, normalises its own input over the union to mean 0 and (unbiased) variance 1.
    The price is one round per BN layer: each round a site sends C_l·2 + 1 numbers.

Loaders may yield ``(x, y)`` or ``x``. ``restore_batchnorm`` returns a new model in eval
mode; the input model is not modified.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import update_bn

from medlib.errors import MedlibError

__all__ = [
    "RESTORE_METHODS",
    "restore_batchnorm",
    "InterleavedLoader",
    "BNMoments",
    "site_bn_moments",
    "pool_moments",
    "batchnorm_layers",
]

RESTORE_METHODS = ("recompute_stats", "finetune_epoch", "site_stats")


class InterleavedLoader:
    """Round-robin over several sites' loaders (batch 1 of site A, of site B, ..., batch 2 of A, ...).

    One epoch on "the four datasets" should not end with one site's data only: interleaving
    keeps the last steps of the restoring epoch from belonging to a single site.
    """

    def __init__(self, loaders: Sequence[Iterable]):
        self.loaders = list(loaders)

    def __iter__(self):
        sentinel = object()
        iterators = [iter(loader) for loader in self.loaders]
        for batches in itertools.zip_longest(*iterators, fillvalue=sentinel):
            for batch in batches:
                if batch is not sentinel:
                    yield batch

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders)


def _as_loaders(loaders) -> list:
    if isinstance(loaders, (list, tuple)):
        out = list(loaders)
    else:
        out = [loaders]
    if not out:
        raise MedlibError("restore_batchnorm needs at least one loader (a site's data)")
    return out


def _inputs(batch):
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def running_variances(model: nn.Module) -> Tensor:
    """Every BatchNorm channel's running variance, flattened: what merging can corrupt (§3.5)."""
    layers = batchnorm_layers(model).values()
    return torch.cat([bn.running_var.detach().flatten().cpu() for bn in layers]) if layers else torch.zeros(0)


def batchnorm_layers(model: nn.Module) -> dict[str, _BatchNorm]:
    """The BN layers that keep running statistics, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.track_running_stats}


@dataclass
class BNMoments:
    """What one site shares for one BN layer: per-channel count, Σx and Σx² (float64)."""

    count: int
    total: Tensor
    total_sq: Tensor

    def __add__(self, other: "BNMoments") -> "BNMoments":
        return BNMoments(self.count + other.count, self.total + other.total, self.total_sq + other.total_sq)

    def mean_var(self) -> tuple[Tensor, Tensor]:
        """Mean and unbiased variance (PyTorch's ``running_var`` convention)."""
        if self.count < 2:
            raise MedlibError(f"BN statistics need at least 2 values per channel, got {self.count}")
        mean = self.total / self.count
        var = (self.total_sq - self.count * mean**2) / (self.count - 1)
        return mean, var.clamp_min(0.0)


class _Stop(Exception):
    pass


@torch.no_grad()
def site_bn_moments(model: nn.Module, loader: Iterable, layer: str, device=None) -> BNMoments:
    """One site's ``(count, Σx, Σx²)`` of the input of BN layer ``layer`` (model in eval mode).

    The forward pass stops at that layer: later layers are not computed.
    """
    module = dict(model.named_modules())[layer]
    state: dict = {}

    def capture(_module, args):
        x = args[0].detach().double()
        dims = [d for d in range(x.ndim) if d != 1]
        count = x.numel() // x.shape[1]
        moments = BNMoments(count, x.sum(dim=dims), (x * x).sum(dim=dims))
        state["m"] = moments if "m" not in state else state["m"] + moments
        raise _Stop

    handle = module.register_forward_pre_hook(capture)
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            x = _inputs(batch)
            x = x.to(device) if device is not None else x
            try:
                model(x)
            except _Stop:
                pass
    finally:
        handle.remove()
        model.train(was_training)
    if "m" not in state:
        raise MedlibError(f"BN layer {layer!r} saw no input: the loader is empty or the layer is unused")
    return state["m"]


def pool_moments(moments: Sequence[BNMoments]) -> tuple[Tensor, Tensor]:
    """Pooled mean and unbiased variance from the sites' moments (sample-weighted)."""
    return sum(moments[1:], moments[0]).mean_var()


@torch.no_grad()
def _forward_order(model: nn.Module, batch, device) -> list[str]:
    layers = batchnorm_layers(model)
    names = {m: n for n, m in layers.items()}
    order: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: order.append(names[mod])) for m in layers.values()]
    was_training = model.training
    model.eval()
    try:
        x = _inputs(batch)
        model(x.to(device) if device is not None else x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if len(order) != len(set(order)):
        raise MedlibError("site_stats cannot handle a BN layer that is called twice in one forward pass")
    return order + [n for n in layers if n not in order]  # unused layers keep their statistics


def _site_stats(model: nn.Module, loaders: list, device) -> nn.Module:
    first = next(iter(loaders[0]), None)
    if first is None:
        raise MedlibError("the first loader is empty")
    layers = batchnorm_layers(model)
    for name in _forward_order(model, first, device):
        bn = layers[name]
        # one round: every site sends its moments of this layer's input, the pool sets the layer
        moments = [site_bn_moments(model, loader, name, device) for loader in loaders]
        if moments[0].total.shape[0] != bn.num_features:
            raise MedlibError(f"{name}: expected {bn.num_features} channels, got {moments[0].total.shape[0]}")
        mean, var = pool_moments(moments)
        bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
        bn.running_var.copy_(var.to(bn.running_var.dtype))
    return model


def restore_batchnorm(
    model: nn.Module,
    loaders,
    method: str = "recompute_stats",
    *,
    device=None,
    lr: float = 1e-5,
    class_weights: Tensor | None = None,
    seed: int = 0,
    cumulative_stats: bool = False,
) -> nn.Module:
    """§3.5: a copy of ``model`` with its state restored on ``loaders`` (one site's or several).

    ``loaders`` is one loader (any iterable of batches that is not a list/tuple, e.g. a
    DataLoader) or a list/tuple of loaders, one per site.

    ``finetune_epoch`` trains one epoch with Adam at ``lr`` (Paper A's 1e-5 by default) and
    cross-entropy weighted by ``class_weights``, batches of the sites interleaved.
    ``recompute_stats`` and ``site_stats`` only run forward passes (see the module doc).

    One epoch is weak at PyTorch's BN momentum 0.1: after n batches a share 0.9ⁿ of the merged
    statistics remains (on a small part, most of it). ``cumulative_stats=True`` resets the
    statistics and lets every BN layer average the epoch's batches equally (momentum ``None``),
    so the epoch replaces them; the layers' momentum is put back afterwards.
    """
    if method not in RESTORE_METHODS:
        raise MedlibError(f"unknown restore method {method!r}; expected one of {RESTORE_METHODS}")
    loaders = _as_loaders(loaders)
    restored = copy.deepcopy(model)
    if device is not None:
        restored.to(device)
    else:  # stay where the model is
        device = next(itertools.chain(restored.parameters(), restored.buffers()), torch.empty(0)).device
    if cumulative_stats and method != "finetune_epoch":
        raise MedlibError(f"cumulative_stats belongs to 'finetune_epoch'; {method!r} always recomputes from scratch")
    if method == "recompute_stats":
        update_bn(InterleavedLoader(loaders), restored, device=device)
        return restored.eval()
    if method == "site_stats":
        if batchnorm_layers(restored):
            _site_stats(restored, loaders, device)
        return restored.eval()
    from medlib.train import TrainConfig, fit

    cfg = TrainConfig(lr=lr, epochs=1, class_weights=class_weights, seed=seed, device=device, log_every=0)
    layers = batchnorm_layers(restored).values() if cumulative_stats else ()
    momenta = [bn.momentum for bn in layers]
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
    fit(restored, InterleavedLoader(loaders), cfg)
    for bn, m in zip(layers, momenta):
        bn.momentum = m
    return restored.eval()
