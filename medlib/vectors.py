"""Data vectors (Paper A, §3.2–3.4): τ_i = θ_i − θ_pre, τ_sum = λ Σ τ_i, θ_mix = θ_pre + τ_sum.

::

    tau = [DataVector.between(pretrained, site) for site in sites]   # §3.2
    tau_sum = 0.5 * sum(tau)                                          # §3.3
    merged = tau_sum.apply_to(pretrained)                             # §3.4

or, with the heads and BN buffers handled as in §4.1, ``merge(pretrained, sites, lam=0.5)``.

What enters a vector. The paper builds vectors from "layers with pretrained parameters" and
ignores the new classification layer. Here a vector covers the *parameters* (``nn.Parameter``)
of the pretrained model, minus the layers the model declares new (``model.new_layers``,
``("head",)`` for :class:`medlib.models.Classifier`). Buffers — BatchNorm running
mean/variance and ``num_batches_tracked`` — are not parameters and stay out: summing
variance differences can make a variance negative (see ``merge(..., include_buffers=True)``).
The BN statistics are restored afterwards (§3.5, :mod:`medlib.bn`).

When the inputs are plain state dicts rather than modules, a key counts as a buffer if it is
not floating point or its last name is ``running_mean``/``running_var``/``num_batches_tracked``,
and ``head.*`` counts as new (medlib classifiers' convention); pass ``new_layers=`` otherwise.

:func:`merge` builds the merged *model* for the three columns of the paper's tables
(Params Mean, Data Vector, Random Vector), including what the vector leaves out:
the heads are averaged over the sites ("we simply averaged the classification head
parameters of the four models", §4.1) and so are the BN buffers (to be restored by
:func:`medlib.bn.restore_batchnorm`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Union

import torch
from torch import Tensor, nn

from medlib.errors import MedlibError

__all__ = ["DataVector", "merge", "MERGE_METHODS", "split_keys", "KeyRoles"]

ModelOrState = Union[nn.Module, Mapping[str, Tensor]]
MERGE_METHODS = ("data_vector", "params_mean", "random_vector")
_BN_BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")
_DEFAULT_NEW_LAYERS = ("head",)  # medlib.models.Classifier.new_layers
# Keys are merged in groups of about this many bytes per input: small enough that the
# running sum stays in the CPU's L2 cache while every site adds into it, large enough that
# the ``torch._foreach_*`` calls are few (on CUDA one group holds everything).
_CPU_GROUP_BYTES = 1 << 19
_MAX_LISTED = 12


# --------------------------------------------------------------------------- key bookkeeping


@dataclass(frozen=True)
class KeyRoles:
    """The state-dict keys of a model, sorted by what merging does with them."""

    vector: tuple[str, ...]  # pretrained parameters: θ_pre + λ Σ τ_i
    new: tuple[str, ...]  # parameters of new layers (the head): mean over sites
    float_buffers: tuple[str, ...]  # e.g. BN running stats: mean over sites, then restored
    int_buffers: tuple[str, ...]  # e.g. num_batches_tracked: element-wise max over sites


def _state(model: ModelOrState) -> dict[str, Tensor]:
    if isinstance(model, nn.Module):
        return {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()}
    if isinstance(model, Mapping):
        return {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in model.items()}
    raise MedlibError(
        f"expected an nn.Module or a state dict (Mapping[str, Tensor]), got {type(model).__name__}"
    )


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def split_keys(model: ModelOrState, new_layers: Sequence[str] | None = None) -> KeyRoles:
    """Sort ``model``'s state-dict keys into vector / new-layer / buffer keys (see module doc)."""
    state = _state(model)
    if new_layers is None:
        new_layers = getattr(model, "new_layers", None)
        if new_layers is None:
            new_layers = () if isinstance(model, nn.Module) else _DEFAULT_NEW_LAYERS
    if isinstance(model, nn.Module):
        params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
        is_param = lambda k, v: k in params  # noqa: E731
    else:
        is_param = lambda k, v: v.is_floating_point() and k.rsplit(".", 1)[-1] not in _BN_BUFFER_NAMES  # noqa: E731
    vector, new, fbuf, ibuf = [], [], [], []
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise MedlibError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        if is_param(key, value):
            (new if _under(key, new_layers) else vector).append(key)
        elif value.is_floating_point() or value.is_complex():
            fbuf.append(key)
        else:
            ibuf.append(key)
    return KeyRoles(tuple(vector), tuple(new), tuple(fbuf), tuple(ibuf))


def _listing(lines: list[str]) -> str:
    shown = "\n  ".join(lines[:_MAX_LISTED])
    more = f"\n  ... and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""
    return f"\n  {shown}{more}"


def _check_layout(reference: dict[str, Tensor], others: Sequence[dict[str, Tensor]],
                  names: Sequence[str], keys: Sequence[str] | None = None,
                  ref_name: str = "pretrained") -> None:
    """Raise a MedlibError listing every key whose presence, shape or dtype differs."""
    full = keys is None  # a full check also reports keys the reference lacks
    keys = list(reference) if full else list(keys)
    problems: list[str] = []
    for other, name in zip(others, names):
        missing = [k for k in keys if k not in other]
        problems += [f"{k}: in {ref_name}, missing from {name}" for k in missing]
        if full:
            problems += [f"{k}: in {name}, not in {ref_name}" for k in other if k not in reference]
        for k in keys:
            if k in missing:
                continue
            a, b = reference[k], other[k]
            if a.shape != b.shape:
                problems.append(f"{k}: shape {tuple(a.shape)} in {ref_name}, {tuple(b.shape)} in {name}")
            elif a.dtype != b.dtype:
                problems.append(f"{k}: dtype {a.dtype} in {ref_name}, {b.dtype} in {name}")
    if problems:
        raise MedlibError(
            "the models do not share one architecture; offending keys:"
            + _listing(problems)
            + "\nExpected every site's model to be the pretrained architecture fine-tuned, with "
            "identical keys, shapes and dtypes. Build all of them with "
            "medlib.models.create_classifier(arch, num_classes) from the same θ_pre and the "
            "same number of classes."
        )


def _raise_non_finite(key: str, inputs: Sequence[Tensor], names: Sequence[str], what: str) -> None:
    culprits = [n for t, n in zip(inputs, names) if t.is_floating_point() and not torch.isfinite(t).all()]
    where = f"non-finite values (NaN/inf) in {', '.join(culprits)}" if culprits else "the result overflowed"
    raise MedlibError(
        f"{what}: key {key!r}: {where}. Expected finite weights; a diverged fine-tuning run "
        "(NaN loss) must be re-run (lower the learning rate) before it is merged."
    )


def _groups(tensors: Sequence[Tensor]) -> Iterator[slice]:
    """Consecutive index ranges of about ``_CPU_GROUP_BYTES`` (everything at once on CUDA)."""
    if not tensors:
        return
    if tensors[0].device.type != "cpu":
        yield slice(0, len(tensors))
        return
    start, size = 0, 0
    for i, t in enumerate(tensors):
        size += t.numel() * t.element_size()
        if size >= _CPU_GROUP_BYTES:
            yield slice(start, i + 1)
            start, size = i + 1, 0
    if start < len(tensors):
        yield slice(start, len(tensors))


def _linear_combination(terms: Sequence[Sequence[Tensor]], coeffs: Sequence[float],
                        out: Sequence[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor]]:
    """``[Σ_j coeffs[j] · terms[j][k] for k]`` in one pass over memory.

    Writes into ``out`` when given, else into new tensors. Also returns each floating-point
    result's Euclidean norm, taken while its group is still in cache: a NaN/inf anywhere in a
    result makes its norm non-finite, so the norms double as a cheap finiteness check.
    """
    results: list[Tensor] = []
    norms: list[Tensor] = []
    for g in _groups(terms[0]):
        if out is None:
            acc = torch._foreach_mul(list(terms[0][g]), coeffs[0])
        else:
            acc = list(out[g])
            for dest, first in zip(acc, terms[0][g]):  # no foreach variant writes to `out=`
                torch.mul(first, coeffs[0], out=dest)
        for term, c in zip(terms[1:], coeffs[1:]):
            torch._foreach_add_(acc, list(term[g]), alpha=c)
        results.extend(acc)
        floats = [t for t in acc if t.is_floating_point()]
        if floats:
            norms.extend(torch._foreach_norm(floats))
    return results, norms


def _finite_or_raise(keys: Sequence[str], outputs: Sequence[Tensor], norms: Sequence[Tensor],
                     inputs: Sequence[Sequence[Tensor]], names: Sequence[str], what: str) -> None:
    """Raise naming the key (and the input) holding a NaN/inf; ``norms`` from _linear_combination."""
    if not norms or bool(torch.isfinite(torch.stack(norms)).all()):
        return
    for i, t in enumerate(outputs):  # slow path, only on failure (or an overflowing norm)
        if t.is_floating_point() and not torch.isfinite(t).all():
            _raise_non_finite(keys[i], [inp[i] for inp in inputs], names, what)


def _assemble(template: ModelOrState, state: dict[str, Tensor]) -> ModelOrState:
    """A new model like ``template`` whose tensors *are* ``state`` (no extra copy).

    For a module this deep-copies everything except the parameters and persistent buffers,
    which are swapped for the merged tensors through ``deepcopy``'s memo.
    """
    if not isinstance(template, nn.Module):
        return dict(state)
    memo: dict[int, object] = {}
    for key, tensor in template.state_dict(keep_vars=True).items():
        if id(tensor) in memo:
            continue  # a tied weight: one object under two names
        new = state[key]
        if isinstance(tensor, nn.Parameter):
            new = nn.Parameter(new, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = new
    return copy.deepcopy(template, memo)


# --------------------------------------------------------------------------- the data vector


class DataVector:
    """τ = θ_i − θ_pre over the pretrained parameters (§3.2), with vector arithmetic (§3.3).

    ``a + b``, ``a - b``, ``-a``, ``2.0 * a``, ``a * 2.0``, ``a / 4`` and ``sum([...])``
    work key by key (Eq. 2). The tensors are shared, not copied: treat them as read-only.
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Mapping[str, Tensor]):
        object.__setattr__(self, "_tensors", dict(tensors))

    def __setattr__(self, name, value):
        raise AttributeError("DataVector is immutable; arithmetic returns a new vector")

    # -- construction
    @classmethod
    def between(cls, pretrained: ModelOrState, finetuned: ModelOrState, *,
                new_layers: Sequence[str] | None = None) -> "DataVector":
        """τ = θ_finetuned − θ_pretrained over ``pretrained``'s pretrained parameters."""
        pre, ft = _state(pretrained), _state(finetuned)
        keys = split_keys(pretrained, new_layers).vector
        _check_layout(pre, [ft], ["finetuned"], keys)
        a, b = [ft[k] for k in keys], [pre[k] for k in keys]
        diffs, norms = _linear_combination([a, b], [1.0, -1.0])
        _finite_or_raise(keys, diffs, norms, [a, b], ["finetuned", "pretrained"], "DataVector.between")
        return cls(dict(zip(keys, diffs)))

    # -- mapping protocol
    def keys(self):
        return self._tensors.keys()

    def items(self):
        return self._tensors.items()

    def values(self):
        return self._tensors.values()

    def __getitem__(self, key: str) -> Tensor:
        return self._tensors[key]

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __contains__(self, key) -> bool:
        return key in self._tensors

    def numel(self) -> int:
        return sum(t.numel() for t in self._tensors.values())

    def __repr__(self) -> str:
        return f"DataVector({len(self)} tensors, {self.numel():,} values)"

    def only(self, keep: Callable[[str, Tensor], bool]) -> "DataVector":
        """The sub-vector of the entries with ``keep(key, tensor)`` true (e.g. conv weights)."""
        return DataVector({k: v for k, v in self.items() if keep(k, v)})

    # -- arithmetic (Eq. 2 and τ_sum = λ Σ τ_i)
    def _aligned(self, other: "DataVector", op: str) -> tuple[list[Tensor], list[Tensor]]:
        if list(self._tensors) != list(other._tensors):
            mine, theirs = set(self._tensors), set(other._tensors)
            diff = [f"{k}: only in left operand" for k in self._tensors if k not in theirs]
            diff += [f"{k}: only in right operand" for k in other._tensors if k not in mine]
            if not diff:
                diff = ["same keys in a different order"]
            raise MedlibError(f"cannot {op} data vectors over different layers:" + _listing(diff)
                              + "\nBuild every vector from the same pretrained model.")
        bad = [f"{k}: {tuple(a.shape)} vs {tuple(b.shape)}"
               for (k, a), b in zip(self.items(), other.values()) if a.shape != b.shape]
        if bad:
            raise MedlibError(f"cannot {op} data vectors with different shapes:" + _listing(bad))
        return list(self.values()), list(other.values())

    def __add__(self, other):
        if isinstance(other, Real) and other == 0:  # lets sum([...]) start from 0
            return self
        if not isinstance(other, DataVector):
            return NotImplemented
        a, b = self._aligned(other, "add")
        return DataVector(dict(zip(self.keys(), torch._foreach_add(a, b))))

    __radd__ = __add__

    def __sub__(self, other):
        if not isinstance(other, DataVector):
            return NotImplemented
        a, b = self._aligned(other, "subtract")
        return DataVector(dict(zip(self.keys(), torch._foreach_sub(a, b))))

    def __neg__(self):
        return DataVector(dict(zip(self.keys(), torch._foreach_neg(list(self.values())))))

    def __mul__(self, scalar):
        if isinstance(scalar, Tensor) and scalar.numel() == 1:
            scalar = scalar.item()
        if not isinstance(scalar, Real) or isinstance(scalar, bool):
            return NotImplemented
        return DataVector(dict(zip(self.keys(), torch._foreach_mul(list(self.values()), float(scalar)))))

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        if not isinstance(scalar, Real) or isinstance(scalar, bool):
            return NotImplemented
        return self * (1.0 / float(scalar))

    # -- geometry (Figure 2: per-layer cosine similarity)
    def norm(self) -> float:
        """Euclidean norm of the whole vector."""
        if not self._tensors:
            return 0.0
        norms = torch._foreach_norm([t.float() if not t.is_floating_point() else t for t in self.values()])
        return float(torch.linalg.vector_norm(torch.stack(norms).double()))

    def cosine(self, other: "DataVector", per_layer: bool = False):
        """cos(τ_a, τ_b) over the whole vector, or ``{key: cos}`` per tensor (in key order).

        A zero tensor has no direction: its cosine is NaN.
        """
        a, b = self._aligned(other, "compare")
        dots = [torch.dot(x.reshape(-1).double(), y.reshape(-1).double()) for x, y in zip(a, b)]
        na = [x.double().norm() for x in a]
        nb = [y.double().norm() for y in b]

        def cos(dot, n1, n2) -> float:
            denom = float(n1 * n2)
            return float(dot) / denom if denom > 0 else math.nan

        if per_layer:
            return {k: cos(d, x, y) for k, d, x, y in zip(self.keys(), dots, na, nb)}
        total = sum(float(d) for d in dots)
        return cos(total, math.sqrt(sum(float(x) ** 2 for x in na)), math.sqrt(sum(float(y) ** 2 for y in nb)))

    # -- §3.4
    def apply_to(self, pretrained: ModelOrState, scale: float = 1.0) -> ModelOrState:
        """θ_pre + scale·τ as a new model (or state dict); ``pretrained`` is not modified."""
        pre = _state(pretrained)
        _check_layout(dict(self.items()), [pre], ["the pretrained model"], list(self.keys()),
                      ref_name="the data vector")
        keys = list(self.keys())
        base, tau = [pre[k] for k in keys], list(self.values())
        new, norms = _linear_combination([base, tau], [1.0, float(scale)])
        _finite_or_raise(keys, new, norms, [base, tau], ["pretrained", "data vector"], "DataVector.apply_to")
        state = {k: v.clone() for k, v in pre.items() if k not in self._tensors}
        state.update(zip(keys, new))
        return _assemble(pretrained, {k: state[k] for k in pre})


# --------------------------------------------------------------------------- merging (§3.3–3.4)


def merge(
    pretrained: ModelOrState,
    finetuned: Sequence[ModelOrState],
    method: str = "data_vector",
    lam: float = 0.5,
    seed: int = 0,
    include_buffers: bool = False,
    *,
    new_layers: Sequence[str] | None = None,
    into: ModelOrState | None = None,
) -> ModelOrState:
    """One merged model from the sites' fine-tuned models; the columns of Tables 1–3.

    ``data_vector`` (§3.3–3.4)
        θ_mix = θ_pre + λ Σ_i τ_i on the vector parameters, computed as
        (1 − Nλ)·θ_pre + λ·Σ_i θ_i: the same sum, one pass over memory.
        λ = 1/N gives exactly the sites' mean.
    ``params_mean`` (the paper's baseline [8], a uniform model soup)
        the mean of every fine-tuned parameter *and* floating-point buffer.
    ``random_vector`` (the paper's control)
        θ_pre + r, where each tensor of r is a Gaussian direction (seeded by ``seed``)
        rescaled to the norm of the same tensor of λ Σ_i τ_i.

    For ``data_vector`` and ``random_vector`` the new layers (the head) are the sites' mean
    (§4.1) and floating-point buffers (BN running statistics) are the sites' mean as well,
    to be restored afterwards (§3.5). ``include_buffers=True`` pushes floating-point buffers
    through the same arithmetic as the vector instead — the ablation that shows merged
    variances turning negative. Integer buffers (``num_batches_tracked``) cannot be averaged:
    every method keeps their element-wise maximum over the sites.

    Returns a new module (or a new state dict when ``pretrained`` is one); the inputs are
    not modified. ``into`` (a model or state dict of the same architecture, not one of the
    inputs) receives the result in place and is returned instead: a λ sweep can reuse one
    model rather than allocate (and page-fault) a fresh one per λ. Different keys, shapes or
    dtypes raise a :class:`MedlibError` listing them; a NaN/inf in an input or the result
    raises naming the key.
    """
    if method not in MERGE_METHODS:
        raise MedlibError(f"unknown merge method {method!r}; expected one of {MERGE_METHODS}")
    if isinstance(finetuned, (nn.Module, Mapping)) or len(finetuned) == 0:
        raise MedlibError("merge expects a non-empty list of fine-tuned models, one per site")
    if not math.isfinite(lam):
        raise MedlibError(f"lam must be a finite number, got {lam}")
    pre = _state(pretrained)
    sites = [_state(m) for m in finetuned]
    names = [f"finetuned[{i}]" for i in range(len(sites))]
    _check_layout(pre, sites, names)
    device = next(iter(pre.values())).device if pre else torch.device("cpu")
    sites = [{k: v.to(device) for k, v in s.items()} for s in sites]
    roles = split_keys(pretrained, new_layers)
    n = len(sites)
    target = _target(into, pre, [pretrained, *finetuned])
    out: dict[str, Tensor] = {}

    def combine(keys, with_pre: bool, coeff_pre: float, coeff_site: float):
        keys = list(keys)
        if not keys:
            return
        terms = ([[pre[k] for k in keys]] if with_pre else []) + [[s[k] for k in keys] for s in sites]
        coeffs = ([coeff_pre] if with_pre else []) + [coeff_site] * n
        dest = [target[k] for k in keys] if target is not None else None
        result, norms = _linear_combination(terms, coeffs, dest)
        _finite_or_raise(keys, result, norms, terms, (["pretrained"] if with_pre else []) + names, f"merge({method!r})")
        out.update(zip(keys, result))

    if method == "params_mean":
        combine(roles.vector + roles.new + roles.float_buffers, False, 0.0, 1.0 / n)
    else:
        pushed = roles.vector + (roles.float_buffers if include_buffers else ())
        averaged = roles.new + (() if include_buffers else roles.float_buffers)
        combine(averaged, False, 0.0, 1.0 / n)
        if method == "data_vector":
            # θ_pre + λ Σ (θ_i − θ_pre) = (1 − Nλ) θ_pre + λ Σ θ_i
            combine(pushed, True, 1.0 - n * lam, lam)
        else:
            generator = torch.Generator().manual_seed(seed)
            for key in pushed:
                terms = [[pre[key]]] + [[s[key]] for s in sites]
                (tau_sum,), norms = _linear_combination(terms, [-n * lam] + [lam] * n)
                _finite_or_raise([key], [tau_sum], norms, terms, ["pretrained"] + names, "merge('random_vector')")
                direction = torch.randn(tau_sum.shape, generator=generator, dtype=torch.float64)
                scale = float(torch.linalg.vector_norm(tau_sum.double())) / max(float(direction.norm()), 1e-300)
                out[key] = pre[key] + (direction * scale).to(device=device, dtype=tau_sum.dtype)
    for key in roles.int_buffers:
        out[key] = torch.stack([s[key] for s in sites]).amax(dim=0)
    if target is not None:
        for key, value in out.items():
            if value is not target[key]:
                target[key].copy_(value)
        return into
    return _assemble(pretrained, {k: out[k] for k in pre})


def _target(into: ModelOrState | None, pre: dict[str, Tensor], inputs: Sequence[ModelOrState]) -> dict[str, Tensor] | None:
    """The tensors of ``into`` to write the merge into, after checking it is safe to."""
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
