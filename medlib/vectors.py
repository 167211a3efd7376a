r"""Data vectors (Paper A §3.2–3.4), in the style of task vectors (Ilharco et al., 2023).

.. math:: \tau_i = \theta_i - \theta_{pre} \;(1) \qquad \tau_{sum} = \lambda \sum_i \tau_i \;(2) \qquad
          \theta_{mix} = \theta_{pre} + \tau_{sum} \;(3)

A vector holds the pretrained *parameters* only: the layers a model declares new (``new_layers``, the
head; the paper "ignored the classification layer") and BatchNorm buffers stay out (through Eq. 3,
σ²_mix = (1 − Nλ)σ²_pre + λΣσ²_i can be negative). :func:`merge` builds whole merged models: heads and
BN buffers as the sites' mean (§4.1; statistics then restored, :mod:`medlib.bn`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Union

import numpy as np
import torch
from torch import Tensor, nn

from medlib.errors import MedlibError

__all__ = ["DataVector", "merge", "MERGE_METHODS", "split_keys", "KeyRoles"]

ModelOrState = Union[nn.Module, Mapping[str, Tensor]]
MERGE_METHODS = ("data_vector", "params_mean", "random_vector", "ties", "dare")
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_MAX_LISTED = 12


@dataclass(frozen=True)
class KeyRoles:
    """A model's state-dict keys, sorted by what merging does with them."""

    vector: tuple[str, ...]  # pretrained parameters: Eq. 1–3
    new: tuple[str, ...]  # parameters of new layers (the head): the sites' mean
    float_buffers: tuple[str, ...]  # BN running statistics: the sites' mean, then restored
    int_buffers: tuple[str, ...]  # num_batches_tracked: the sites' maximum


def _state(model: ModelOrState) -> dict[str, Tensor]:
    if isinstance(model, nn.Module):
        return {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()}
    if isinstance(model, Mapping):
        return {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in model.items()}
    raise MedlibError(f"expected an nn.Module or a state dict (Mapping[str, Tensor]), got {type(model).__name__}")


def split_keys(model: ModelOrState, new_layers: Sequence[str] | None = None) -> KeyRoles:
    """Sort ``model``'s keys; for a plain state dict a buffer is a non-float or BN-named key and ``head.*`` is new."""
    state, is_module = _state(model), isinstance(model, nn.Module)
    if new_layers is None:
        new_layers = getattr(model, "new_layers", None) or (() if is_module else ("head",))
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)} if is_module else None
    roles: dict[str, list[str]] = {"vector": [], "new": [], "float_buffers": [], "int_buffers": []}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise MedlibError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        is_param = key in params if is_module else (
            value.is_floating_point() and key.rsplit(".", 1)[-1] not in _BN_BUFFERS)
        if is_param:
            new = any(key == p or key.startswith(p + ".") for p in new_layers)
            roles["new" if new else "vector"].append(key)
        else:
            roles["float_buffers" if value.is_floating_point() or value.is_complex() else "int_buffers"].append(key)
    return KeyRoles(**{role: tuple(keys) for role, keys in roles.items()})


def _listing(lines: list[str]) -> str:
    more = [f"... and {len(lines) - _MAX_LISTED} more"] if len(lines) > _MAX_LISTED else []
    return "".join(f"\n  {line}" for line in lines[:_MAX_LISTED] + more)


def _check_layout(reference: dict, others: Sequence[dict], names: Sequence[str],
                  keys: Sequence[str] | None = None, ref_name: str = "pretrained") -> None:
    problems = []
    for other, name in zip(others, names):
        if keys is None:  # a full check also reports keys the reference lacks
            problems += [f"{k}: in {name}, not in {ref_name}" for k in other if k not in reference]
        for k in reference if keys is None else keys:
            a, b = reference[k], other.get(k)
            if b is None:
                problems.append(f"{k}: in {ref_name}, missing from {name}")
            elif a.shape != b.shape:
                problems.append(f"{k}: shape {tuple(a.shape)} in {ref_name}, {tuple(b.shape)} in {name}")
            elif a.dtype != b.dtype:
                problems.append(f"{k}: dtype {a.dtype} in {ref_name}, {b.dtype} in {name}")
    if problems:
        raise MedlibError(
            "the models do not share one architecture; offending keys:" + _listing(problems)
            + "\nExpected every site's model to be the pretrained architecture fine-tuned, with identical "
            "keys, shapes and dtypes. Build all of them with medlib.models.create_classifier(arch, "
            "num_classes) from the same θ_pre and the same number of classes.")


def _finite(key: str, result: Tensor, inputs: Sequence[Tensor], names: Sequence[str], what: str) -> Tensor:
    # a sum is finite when every term is (one reduction, no mask); the exact test only if it is not
    if not result.is_floating_point() or bool(torch.isfinite(result.sum())) or bool(torch.isfinite(result).all()):
        return result
    bad = [n for t, n in zip(inputs, names) if t.is_floating_point() and not torch.isfinite(t).all()]
    where = f"non-finite values (NaN/inf) in {', '.join(bad)}" if bad else "the result overflowed"
    raise MedlibError(f"{what}: key {key!r}: {where}. Expected finite weights; a diverged fine-tuning run "
                      "(NaN loss) must be re-run (lower the learning rate) before it is merged.")


def _assemble(template: ModelOrState, state: dict[str, Tensor]) -> ModelOrState:
    """A new model like ``template`` whose parameters and buffers *are* ``state`` (no extra copy)."""
    if not isinstance(template, nn.Module):
        return dict(state)
    memo: dict[int, object] = {}  # deepcopy swaps each tensor for its merged value
    for key, tensor in template.state_dict(keep_vars=True).items():
        if id(tensor) not in memo:  # a tied weight is one object under two names
            new = state[key]
            memo[id(tensor)] = nn.Parameter(new, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else new
    return copy.deepcopy(template, memo)


def _kth_largest(rows: Tensor, k: int) -> Tensor:
    """Each row's k-th largest value, shape (rows, 1): numpy's introselect on a CPU, torch on a GPU."""
    d = rows.shape[1]
    if rows.device.type == "cpu" and rows.dtype in (torch.float32, torch.float64):
        values = [np.partition(r.numpy(), d - k)[d - k] for r in rows]  # linear time; torch's is far slower
        return torch.tensor(values, dtype=rows.dtype).unsqueeze(1)
    return rows.kthvalue(d - k + 1, dim=1, keepdim=True).values


class DataVector(Mapping):
    """τ = θ_i − θ_pre over the pretrained parameters (Eq. 1); ``+ - * /`` and ``sum`` key by key (Eq. 2).

    Immutable; tensors are shared between vectors, never modified in place.
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Mapping[str, Tensor]):
        object.__setattr__(self, "_tensors", dict(tensors))

    def __setattr__(self, name, value):
        raise AttributeError("DataVector is immutable; arithmetic returns a new vector")

    @classmethod
    def between(cls, pretrained: ModelOrState, finetuned: ModelOrState, *,
                new_layers: Sequence[str] | None = None) -> "DataVector":
        """Eq. 1: τ = θ_finetuned − θ_pretrained over ``pretrained``'s pretrained parameters."""
        pre, ft = _state(pretrained), _state(finetuned)
        keys = split_keys(pretrained, new_layers).vector
        _check_layout(pre, [ft], ["finetuned"], keys)
        return cls({k: _finite(k, ft[k] - pre[k].to(ft[k].device), [ft[k], pre[k]], ["finetuned", "pretrained"],
                               "DataVector.between") for k in keys})

    def __getitem__(self, key: str) -> Tensor:
        return self._tensors[key]

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def numel(self) -> int:
        return sum(t.numel() for t in self.values())

    def __repr__(self) -> str:
        return f"DataVector({len(self)} tensors, {self.numel():,} values)"

    def only(self, keep: Callable[[str, Tensor], bool]) -> "DataVector":
        """The sub-vector of the entries with ``keep(key, tensor)`` true (e.g. conv weights)."""
        return DataVector({k: v for k, v in self.items() if keep(k, v)})

    # -- Eq. 2
    def _zip(self, other: "DataVector", op: str):
        if list(self.keys()) != list(other.keys()):
            diff = [f"{k}: only in left operand" for k in self.keys() if k not in other]
            diff += [f"{k}: only in right operand" for k in other.keys() if k not in self]
            raise MedlibError(f"cannot {op} data vectors over different layers:"
                              + _listing(diff or ["same keys in a different order"])
                              + "\nBuild every vector from the same pretrained model.")
        bad = [f"{k}: {tuple(a.shape)} vs {tuple(other[k].shape)}" for k, a in self.items()
               if a.shape != other[k].shape]
        if bad:
            raise MedlibError(f"cannot {op} data vectors with different shapes:" + _listing(bad))
        return [(k, a, other[k]) for k, a in self.items()]

    def __add__(self, other):
        if isinstance(other, Real) and other == 0:  # sum([...]) starts from 0
            return self
        if not isinstance(other, DataVector):
            return NotImplemented
        return DataVector({k: a + b for k, a, b in self._zip(other, "add")})

    __radd__ = __add__

    def __sub__(self, other):
        if not isinstance(other, DataVector):
            return NotImplemented
        return DataVector({k: a - b for k, a, b in self._zip(other, "subtract")})

    def __neg__(self):
        return DataVector({k: -v for k, v in self.items()})

    def __mul__(self, scalar):
        if isinstance(scalar, Tensor) and scalar.numel() == 1:
            scalar = scalar.item()
        if not isinstance(scalar, Real) or isinstance(scalar, bool):
            return NotImplemented
        return DataVector({k: v * float(scalar) for k, v in self.items()})

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        if not isinstance(scalar, Real) or isinstance(scalar, bool):
            return NotImplemented
        return self * (1.0 / float(scalar))

    # -- Eq. 3
    def apply_to(self, pretrained: ModelOrState, scale: float = 1.0) -> ModelOrState:
        """θ_pre + scale·τ as a new model (or state dict); ``pretrained`` is not modified."""
        pre = _state(pretrained)
        _check_layout(self._tensors, [pre], ["the pretrained model"], list(self.keys()), "the data vector")
        state = {k: v.clone() for k, v in pre.items() if k not in self}
        for k, tau in self.items():
            state[k] = _finite(k, pre[k] + scale * tau.to(pre[k].device), [pre[k], tau],
                               ["pretrained", "data vector"], "DataVector.apply_to")
        return _assemble(pretrained, {k: state[k] for k in pre})

    # -- geometry (Figure 2)
    def dot(self, other: "DataVector") -> float:
        """⟨τ_a, τ_b⟩ in float64."""
        return sum(float((a.double() * b.double()).sum()) for _, a, b in self._zip(other, "compare"))

    def norm(self) -> float:
        return math.sqrt(self.dot(self))

    def cosine(self, other: "DataVector", per_layer: bool = False):
        """cos(τ_a, τ_b) over the whole vector, or ``{key: cos}`` per tensor; NaN for a zero vector."""
        if per_layer:
            return {k: DataVector({k: a}).cosine(DataVector({k: b})) for k, a, b in self._zip(other, "compare")}
        dot = self.dot(other)
        squares = self.dot(self) * other.dot(other)
        return dot / math.sqrt(squares) if squares > 0 else math.nan

    # -- later merging methods, as operations on vectors
    @staticmethod
    def ties(vectors: Sequence["DataVector"], density: float) -> "DataVector":
        """TIES-merging (Yadav et al., 2023) of ``vectors``, before the scale λ.

        Trim to each vector's ``int(d · density)`` largest magnitudes (ties at the threshold kept); elect
        the sign of the sum per coordinate (a zero sum takes the sign of the signs' total, as the authors'
        code does); the mean of the trimmed values that agree with it, 0 where none do.
        """
        if not 0 < density <= 1:
            raise MedlibError(f"TIES density must be in (0, 1] (the fraction of values kept; 0.2 in the paper), "
                              f"got {density}")
        if not vectors:
            raise MedlibError("TIES needs at least one data vector")
        keys = list(vectors[0].keys())
        for v in vectors[1:]:
            vectors[0]._zip(v, "merge")  # same layers and shapes, or a listed error
        flat = torch.stack([torch.cat([v[k].reshape(-1) for k in keys]) for v in vectors])  # (N, d)
        d, k = flat.shape[1], int(flat.shape[1] * density)
        if k < d:
            magnitude = flat.abs()
            flat = flat * (magnitude >= _kth_largest(magnitude, k)) if k > 0 else torch.zeros_like(flat)
        sign = torch.sign(flat.sum(dim=0))
        sign[sign == 0] = torch.sign(sign.sum())
        agree = torch.where(sign > 0, flat > 0, flat < 0)
        merged = (flat * agree).sum(dim=0) / agree.sum(dim=0).clamp_min(1)
        parts = merged.split([vectors[0][key].numel() for key in keys])
        return DataVector({key: p.view_as(vectors[0][key]).to(vectors[0][key].dtype) for key, p in zip(keys, parts)})

    def dare(self, drop: float, seed: int | torch.Generator = 0) -> "DataVector":
        """DARE (Yu et al., 2024): drop each value with probability ``drop``, rescale the rest by 1/(1 − drop)."""
        if not 0 <= drop < 1:
            raise MedlibError(f"DARE drop must be in [0, 1) (the probability of zeroing a value; 0.9 in the paper), "
                              f"got {drop}")
        g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
        out = {}
        for k, v in self.items():
            keep = torch.rand(v.shape, generator=g) >= drop  # drawn on the CPU: same masks on any device
            out[k] = torch.where(keep.to(v.device), v / (1.0 - drop), 0.0)
        return DataVector(out)

    # -- exchanged as safetensors, never pickles
    def save(self, path, metadata: dict | None = None) -> None:
        from medlib.io import save_weights

        # safetensors sorts its keys: the layer order (Figure 2's x-axis) travels in the metadata
        save_weights(path, dict(self.items()), {**(metadata or {}), "kind": "data_vector", "keys": list(self.keys())})

    @classmethod
    def load(cls, path) -> "DataVector":
        from medlib.io import load_weights

        state, meta = load_weights(path)
        if meta.get("kind") != "data_vector":
            raise MedlibError(f"{path} is not a data vector file (metadata kind={meta.get('kind')!r}); "
                              "write it with DataVector.save")
        keys = meta.get("keys", list(state))
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(state):
            raise MedlibError(f"{path}: its metadata 'keys' do not list exactly the file's {len(state)} tensors; "
                              "write it with DataVector.save")
        return cls({k: state[k] for k in keys})


def merge(pretrained: ModelOrState, finetuned: Sequence[ModelOrState], method: str = "data_vector", *,
          lam: float = 0.5, seed: int = 0, include_buffers: bool = False, density: float | None = None,
          drop: float | None = None, new_layers: Sequence[str] | None = None,
          into: ModelOrState | None = None) -> ModelOrState:
    """One merged model from the sites' fine-tuned models.

    ``data_vector``    θ_pre + λ Σ τ_i (Eq. 1–3); at λ = 1/N exactly the sites' mean.
    ``params_mean``    the mean of every parameter *and* float buffer (a uniform soup, the paper's [8]).
    ``random_vector``  θ_pre + r, each tensor of r a seeded Gaussian direction with the norm of λ Σ τ_i's.
    ``ties``           θ_pre + λ · TIES(τ_1..τ_N; ``density``, default 0.2)  (:meth:`DataVector.ties`).
    ``dare``           θ_pre + λ Σ DARE(τ_i; ``drop``, default 0.9, seeded by ``seed``).

    Heads and float buffers: the sites' mean (``include_buffers=True`` pushes the buffers through Eq. 1–3:
    the ablation with negative variances); int buffers: the maximum. ``into`` receives the result in place.
    """
    if method not in MERGE_METHODS:
        raise MedlibError(f"unknown merge method {method!r}; expected one of {MERGE_METHODS}")
    if isinstance(finetuned, (nn.Module, Mapping)) or len(finetuned) == 0:
        raise MedlibError("merge expects a non-empty list of fine-tuned models, one per site")
    if not math.isfinite(lam):
        raise MedlibError(f"lam must be a finite number, got {lam}")
    if density is not None and method != "ties" or drop is not None and method != "dare":
        raise MedlibError(f"density= belongs to method 'ties' and drop= to 'dare', not to {method!r}")
    if include_buffers and method not in ("data_vector", "random_vector"):
        raise MedlibError(f"include_buffers=True is the BN ablation of 'data_vector', not of {method!r}")
    pre, sites = _state(pretrained), [_state(m) for m in finetuned]
    names = [f"finetuned[{i}]" for i in range(len(sites))]
    _check_layout(pre, sites, names)
    device = next(iter(pre.values())).device if pre else torch.device("cpu")
    sites = [{k: v.to(device) for k, v in s.items()} for s in sites]
    roles, n = split_keys(pretrained, new_layers), len(sites)
    target = _target(into, pre, [pretrained, *finetuned])
    what = f"merge({method!r})"

    def finite(k, value):  # NaN/inf propagate to the result: checked once per key
        return _finite(k, value, [pre[k]] + [s[k] for s in sites], ["pretrained"] + names, what)

    pushed = roles.vector + (roles.float_buffers if include_buffers else ())
    averaged = roles.new + (() if include_buffers else roles.float_buffers)
    if method == "params_mean":
        pushed, averaged = (), roles.vector + roles.new + roles.float_buffers
    out = {k: finite(k, sum(s[k] for s in sites) / n) for k in averaged}
    out.update({k: torch.stack([s[k] for s in sites]).amax(dim=0) for k in roles.int_buffers})
    taus = [DataVector({k: s[k] - pre[k] for k in pushed}) for s in sites]  # Eq. 1
    if method == "ties":
        tau_sum = lam * DataVector.ties(taus, 0.2 if density is None else density)
    elif method == "dare":
        g = torch.Generator().manual_seed(seed)
        tau_sum = lam * sum(t.dare(0.9 if drop is None else drop, g) for t in taus)
    else:
        tau_sum = lam * sum(taus)  # Eq. 2
    if method == "random_vector":
        g = torch.Generator().manual_seed(seed)
        tau_sum = DataVector({k: _random_direction(v, g) for k, v in tau_sum.items()})
    out.update({k: finite(k, pre[k] + tau_sum[k]) for k in pushed})  # Eq. 3
    if target is None:
        return _assemble(pretrained, {k: out[k] for k in pre})
    for k, value in out.items():
        target[k].copy_(value)
    return into


def _random_direction(like: Tensor, generator: torch.Generator) -> Tensor:
    """A seeded Gaussian direction with the norm of ``like`` (the random-vector control)."""
    direction = torch.randn(like.shape, generator=generator, dtype=torch.float64)
    scale = float(torch.linalg.vector_norm(like.double())) / max(float(direction.norm()), 1e-300)
    return (direction * scale).to(device=like.device, dtype=like.dtype)


def _target(into: ModelOrState | None, pre: dict[str, Tensor], inputs: Sequence[ModelOrState]) -> dict | None:
    if into is None:
        return None
    if any(into is m for m in inputs):
        raise MedlibError("merge(into=...) must not be one of the models being merged; pass a copy")
    target = _state(into)
    _check_layout(pre, [target], ["into"])
    read = {t.data_ptr() for m in inputs for t in _state(m).values() if t.numel()}
    shared = [k for k, t in target.items() if t.numel() and t.data_ptr() in read]
    if shared:
        raise MedlibError("merge(into=...) shares memory with an input model at keys:" + _listing(shared)
                          + "\nPass a separate copy (copy.deepcopy) as `into`.")
    return target
