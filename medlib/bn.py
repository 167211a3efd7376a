"""Restoring the state of a merged model (Paper A §3.5): its BatchNorm running statistics.

Three methods, from most to least data exchanged: ``finetune_epoch``, the paper's one epoch of training
on the sites' labelled data (§4.1; moves the weights too); ``recompute_stats``, forward passes only
(:func:`torch.optim.swa_utils.update_bn`: every *batch* weighted equally); ``site_stats``, federated
statistics: per BN layer in forward order, each site shares only ``(count, Σx, Σx²)`` per channel, and the
pooled mean and variance are exactly those of the union of the sites' data (every *sample* weighted
equally; one round per layer, C_l·2 + 1 numbers per site). Loaders may yield ``(x, y)`` or ``x``.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import update_bn

from medlib.errors import MedlibError
from medlib.train.metrics import device_of

__all__ = ["RESTORE_METHODS", "restore_batchnorm", "InterleavedLoader", "BNMoments", "site_bn_moments",
           "pool_moments", "batchnorm_layers", "running_variances"]

RESTORE_METHODS = ("recompute_stats", "finetune_epoch", "site_stats")


class InterleavedLoader:
    """Round-robin over the sites' loaders, so the restoring epoch's last steps do not all belong to one site."""

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


@contextlib.contextmanager
def _hooked_eval(model: nn.Module, hooks: dict[nn.Module, Callable]):
    """``model`` in eval mode with forward pre-hooks on some modules; both undone afterwards."""
    handles = [m.register_forward_pre_hook(h) for m, h in hooks.items()]
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def _forward(model: nn.Module, batch, device) -> None:
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    try:
        model(x.to(device) if device is not None else x)
    except _Stop:
        pass


@torch.no_grad()
def site_bn_moments(model: nn.Module, loader: Iterable, layer: str, device=None) -> BNMoments:
    """One site's ``(count, Σx, Σx²)`` of the input of BN layer ``layer`` (eval mode; the pass stops there)."""
    state: dict = {}

    def capture(_module, args):
        x = args[0].detach().double()
        dims = [d for d in range(x.ndim) if d != 1]
        moments = BNMoments(x.numel() // x.shape[1], x.sum(dim=dims), (x * x).sum(dim=dims))
        state["m"] = moments if "m" not in state else state["m"] + moments
        raise _Stop

    with _hooked_eval(model, {dict(model.named_modules())[layer]: capture}):
        for batch in loader:
            _forward(model, batch, device)
    if "m" not in state:
        raise MedlibError(f"BN layer {layer!r} saw no input: the loader is empty or the layer is unused")
    return state["m"]


def pool_moments(moments: Sequence[BNMoments]) -> tuple[Tensor, Tensor]:
    """Pooled mean and unbiased variance from the sites' moments (sample-weighted)."""
    return sum(moments[1:], moments[0]).mean_var()


@torch.no_grad()
def _site_stats(model: nn.Module, loaders: list, device) -> nn.Module:
    first = next(iter(loaders[0]), None)
    if first is None:
        raise MedlibError("the first loader is empty")
    layers = batchnorm_layers(model)
    order: list[str] = []
    with _hooked_eval(model, {m: lambda mod, args, n=n: order.append(n) for n, m in layers.items()}):
        _forward(model, first, device)
    if len(order) != len(set(order)):
        raise MedlibError("site_stats cannot handle a BN layer that is called twice in one forward pass")
    for name in order:  # layers unused in the forward pass keep their statistics
        bn = layers[name]
        # one round: every site sends its moments of this layer's input, the pool sets the layer
        moments = [site_bn_moments(model, loader, name, device) for loader in loaders]
        if moments[0].total.shape[0] != bn.num_features:
            raise MedlibError(f"{name}: expected {bn.num_features} channels, got {moments[0].total.shape[0]}")
        mean, var = pool_moments(moments)
        bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
        bn.running_var.copy_(var.to(bn.running_var.dtype))
    return model


def restore_batchnorm(model: nn.Module, loaders, method: str = "recompute_stats", *, device=None, lr: float = 1e-5,
                      class_weights: Tensor | None = None, seed: int = 0, cumulative_stats: bool = False) -> nn.Module:
    """§3.5: a copy of ``model`` (in eval mode) restored on ``loaders``: one loader, or a list, one per site.

    ``finetune_epoch`` trains one epoch (Adam at ``lr``, cross-entropy weighted by ``class_weights``), the
    sites' batches interleaved. At BN momentum 0.1 a share 0.9ⁿ of the merged statistics survives n
    batches: ``cumulative_stats=True`` resets them and averages the epoch's batches equally (momentum None).
    """
    if method not in RESTORE_METHODS:
        raise MedlibError(f"unknown restore method {method!r}; expected one of {RESTORE_METHODS}")
    loaders = list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]
    if not loaders:
        raise MedlibError("restore_batchnorm needs at least one loader (a site's data)")
    restored = copy.deepcopy(model)
    if device is not None:
        restored.to(device)
    else:  # stay where the model is
        device = device_of(restored)
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
