"""Data vectors and merging (Paper A §3.2–3.4) against hand-computed tensors."""

import math

import pytest
import torch
from torch import nn

from medlib.errors import MedlibError
from medlib.vectors import DataVector, merge, split_keys


class Tiny(nn.Module):
    """conv(1→2, 1×1) → BN(2) → head Linear(2→2); the head is a new layer."""

    new_layers = ("head",)

    def __init__(self, channels: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, 2)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).mean((2, 3)))


def tiny(conv_w, conv_b, bn_w, bn_b, mean, var, nbt, head_w, head_b) -> Tiny:
    m = Tiny()
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        m.conv.weight.copy_(t(conv_w).view(2, 1, 1, 1))
        m.conv.bias.copy_(t(conv_b))
        m.bn.weight.copy_(t(bn_w))
        m.bn.bias.copy_(t(bn_b))
        m.bn.running_mean.copy_(t(mean))
        m.bn.running_var.copy_(t(var))
        m.bn.num_batches_tracked.fill_(nbt)
        m.head.weight.copy_(t(head_w))
        m.head.bias.copy_(t(head_b))
    return m


@pytest.fixture
def models():
    pre = tiny([1, 2], [0, 0], [1, 1], [0, 0], [0, 0], [1, 1], 0, [[0, 0], [0, 0]], [0, 0])
    a = tiny([2, 2], [0.5, 0], [1, 1.5], [0, 0], [1, 2], [0.5, 1.0], 10, [[1, 0], [0, 1]], [1, -1])
    b = tiny([1, 4], [-0.5, 1], [0.5, 1], [0.2, 0], [3, 0], [0.1, 0.2], 7, [[3, 0], [0, -1]], [0, 1])
    return pre, a, b


def close(tensor, expected, tol=1e-6):
    expected = torch.tensor(expected, dtype=tensor.dtype).reshape(tensor.shape)
    assert torch.allclose(tensor, expected, atol=tol, rtol=0), f"{tensor} != {expected}"


def snapshot(*ms):
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in ms]


def same(snap, ms):
    return all(torch.equal(s[k], v) for s, m in zip(snap, ms) for k, v in m.state_dict().items())


# --------------------------------------------------------------------------- DataVector


def test_vector_covers_pretrained_parameters_only(models):
    pre, a, _ = models
    roles = split_keys(pre)
    assert roles.vector == ("conv.weight", "conv.bias", "bn.weight", "bn.bias")
    assert roles.new == ("head.weight", "head.bias")
    assert roles.float_buffers == ("bn.running_mean", "bn.running_var")
    assert roles.int_buffers == ("bn.num_batches_tracked",)
    tau = DataVector.between(pre, a)
    assert list(tau.keys()) == list(roles.vector) and len(tau) == 4
    close(tau["conv.weight"], [1, 0])
    close(tau["conv.bias"], [0.5, 0])
    close(tau["bn.weight"], [0, 0.5])
    close(tau["bn.bias"], [0, 0])


def test_state_dict_inputs_give_the_same_vector(models):
    pre, a, _ = models
    from_modules = DataVector.between(pre, a)
    from_dicts = DataVector.between(pre.state_dict(), a.state_dict())
    assert list(from_dicts.keys()) == list(from_modules.keys())
    assert all(torch.equal(from_dicts[k], from_modules[k]) for k in from_modules)


def test_operator_algebra(models):
    pre, a, b = models
    ta, tb = DataVector.between(pre, a), DataVector.between(pre, b)
    for k, v in ((ta + tb) - tb).items():
        assert torch.allclose(v, ta[k], atol=1e-6)
    for k, v in (2 * ta).items():
        assert torch.equal(v, (ta + ta)[k]) and torch.equal(v, (ta * 2)[k])
    for k, v in sum([ta, tb]).items():
        assert torch.equal(v, (ta + tb)[k])
    close((-ta)["conv.weight"], [-1, 0])
    close((ta / 2)["conv.bias"], [0.25, 0])
    close((0.5 * (ta + tb))["conv.weight"], [0.5, 1.0])
    with pytest.raises(TypeError):
        ta * ta
    with pytest.raises(AttributeError):
        ta.extra = 1


def test_norm_and_cosine_by_hand(models):
    pre, a, b = models
    ta, tb = DataVector.between(pre, a), DataVector.between(pre, b)
    # ‖τ_a‖² = 1 + 0.25 + 0.25 ; ‖τ_b‖² = 4 + (0.25 + 1) + 0.25 + 0.04
    assert ta.norm() == pytest.approx(math.sqrt(1.5), abs=1e-6)
    assert tb.norm() == pytest.approx(math.sqrt(5.54), abs=1e-6)
    # τ_a · τ_b = 0 (conv.w) − 0.25 (conv.b) + 0 + 0
    assert ta.cosine(tb) == pytest.approx(-0.25 / math.sqrt(1.5 * 5.54), abs=1e-6)
    per_layer = ta.cosine(tb, per_layer=True)
    assert list(per_layer) == ["conv.weight", "conv.bias", "bn.weight", "bn.bias"]
    assert per_layer["conv.weight"] == pytest.approx(0.0, abs=1e-7)
    assert per_layer["conv.bias"] == pytest.approx(-0.25 / (0.5 * math.sqrt(1.25)), abs=1e-6)
    assert math.isnan(per_layer["bn.bias"])  # τ_a is zero there: no direction
    assert ta.cosine(ta) == pytest.approx(1.0, abs=1e-9)


def test_apply_to_is_theta_pre_plus_scaled_vector(models):
    pre, a, _ = models
    before = snapshot(pre, a)
    tau = DataVector.between(pre, a)
    new = tau.apply_to(pre, scale=2.0)
    close(new.conv.weight, [3, 2])
    close(new.conv.bias, [1, 0])
    close(new.bn.weight, [1, 2])
    close(new.head.weight, [[0, 0], [0, 0]])  # outside the vector: θ_pre's
    close(new.bn.running_var, [1, 1])
    assert new is not pre and new.conv.weight.data_ptr() != pre.conv.weight.data_ptr()
    assert same(before, [pre, a])
    recovered = tau.apply_to(pre)
    assert all(torch.allclose(recovered.state_dict()[k], a.state_dict()[k]) for k in tau.keys())


# --------------------------------------------------------------------------- merge


def test_data_vector_merge_by_hand(models):
    pre, a, b = models
    before = snapshot(pre, a, b)
    merged = merge(pre, [a, b], "data_vector", lam=1.0)
    close(merged.conv.weight, [2, 4])  # [1, 2] + ([1, 0] + [0, 2])
    close(merged.conv.bias, [0, 1])
    close(merged.bn.weight, [0.5, 1.5])
    close(merged.bn.bias, [0.2, 0])
    close(merged.head.weight, [[2, 0], [0, 0]])  # heads: mean of the sites
    close(merged.head.bias, [0.5, 0])
    close(merged.bn.running_mean, [2, 1])  # buffers: mean of the sites
    close(merged.bn.running_var, [0.3, 0.6])
    assert merged.bn.num_batches_tracked.item() == 10 and merged.bn.num_batches_tracked.dtype == torch.long
    assert same(before, [pre, a, b])
    assert isinstance(merged, Tiny) and merged is not pre


def test_merge_equals_data_vector_arithmetic(models):
    pre, a, b = models
    lam = 0.7
    expected = (lam * sum(DataVector.between(pre, m) for m in (a, b))).apply_to(pre)
    merged = merge(pre, [a, b], "data_vector", lam=lam)
    for k in split_keys(pre).vector:
        assert torch.allclose(merged.state_dict()[k], expected.state_dict()[k], atol=1e-6)


def test_params_mean_by_hand_including_buffers(models):
    pre, a, b = models
    merged = merge(pre, [a, b], "params_mean")
    close(merged.conv.weight, [1.5, 3])
    close(merged.conv.bias, [0, 0.5])
    close(merged.bn.weight, [0.75, 1.25])
    close(merged.bn.bias, [0.1, 0])
    close(merged.head.weight, [[2, 0], [0, 0]])
    close(merged.bn.running_mean, [2, 1])
    close(merged.bn.running_var, [0.3, 0.6])
    assert merged.bn.num_batches_tracked.item() == 10


def test_lambda_one_over_n_equals_params_mean(models):
    pre, a, b = models
    third = tiny([0, 5], [1, 1], [2, 0], [0, 1], [1, 1], [2, 2], 3, [[1, 1], [1, 1]], [0, 0])
    sites = [a, b, third]
    dv = merge(pre, sites, "data_vector", lam=1 / 3).state_dict()
    pm = merge(pre, sites, "params_mean").state_dict()
    for k in dv:
        assert torch.allclose(dv[k].float(), pm[k].float(), atol=1e-6), k


def test_include_buffers_makes_variance_negative(models):
    pre, a, b = models
    # N·λ = 2 as in the paper (4 sites, λ = 0.5). Channel 0: 1 + ((0.5 − 1) + (0.1 − 1)) = −0.4;
    # channel 1: 1 + ((1.0 − 1) + (0.2 − 1)) = 0.2
    merged = merge(pre, [a, b], "data_vector", lam=1.0, include_buffers=True)
    close(merged.bn.running_var, [-0.4, 0.2])
    close(merged.bn.running_mean, [4, 2])
    close(merged.conv.weight, [2, 4])
    close(merged.head.bias, [0.5, 0])


def test_random_vector_matches_per_tensor_norms(models):
    pre, a, b = models
    merged = merge(pre, [a, b], "random_vector", lam=0.5, seed=3)
    tau_sum = 0.5 * (DataVector.between(pre, a) + DataVector.between(pre, b))
    moved = DataVector.between(pre, merged)
    for k in tau_sum.keys():
        assert torch.linalg.vector_norm(moved[k]).item() == pytest.approx(
            torch.linalg.vector_norm(tau_sum[k]).item(), abs=1e-6)
    assert moved.cosine(tau_sum) < 0.999  # a different direction
    close(merged.head.weight, [[2, 0], [0, 0]])
    close(merged.bn.running_var, [0.3, 0.6])
    again = merge(pre, [a, b], "random_vector", lam=0.5, seed=3)
    other = merge(pre, [a, b], "random_vector", lam=0.5, seed=4)
    assert torch.equal(again.conv.weight, merged.conv.weight)
    assert not torch.equal(other.conv.weight, merged.conv.weight)


def test_merge_of_state_dicts_returns_a_state_dict(models):
    pre, a, b = models
    out = merge(pre.state_dict(), [a.state_dict(), b.state_dict()], "data_vector", lam=1.0)
    assert isinstance(out, dict)
    close(out["conv.weight"], [2, 4])
    close(out["head.bias"], [0.5, 0])
    close(out["bn.running_var"], [0.3, 0.6])


def test_merge_into_an_existing_model_reuses_its_memory(models):
    import copy

    pre, a, b = models
    before = snapshot(pre, a, b)
    buffer_model = copy.deepcopy(pre)
    pointer = buffer_model.conv.weight.data_ptr()
    for method, lam in (("data_vector", 1.0), ("params_mean", 0.5), ("random_vector", 0.5)):
        fresh = merge(pre, [a, b], method, lam=lam, seed=1)
        reused = merge(pre, [a, b], method, lam=lam, seed=1, into=buffer_model)
        assert reused is buffer_model and buffer_model.conv.weight.data_ptr() == pointer
        assert all(torch.equal(v, reused.state_dict()[k]) for k, v in fresh.state_dict().items()), method
    assert same(before, [pre, a, b])
    with pytest.raises(MedlibError, match="must not be one of the models"):
        merge(pre, [a, b], into=a)
    aliased = Tiny()
    aliased.conv.weight = a.conv.weight  # shares memory with an input
    with pytest.raises(MedlibError, match="conv.weight"):
        merge(pre, [a, b], into=aliased)


# --------------------------------------------------------------------------- errors


def test_mismatched_shapes_list_the_keys(models):
    pre, a, _ = models
    wide = Tiny(channels=3)
    with pytest.raises(MedlibError) as err:
        merge(pre, [a, wide])
    msg = str(err.value)
    for key in ("conv.weight", "conv.bias", "bn.running_var", "head.weight"):
        assert key in msg
    assert "finetuned[1]" in msg and "(3, 1, 1, 1)" in msg


def test_missing_and_extra_keys_and_dtypes_are_listed(models):
    pre, a, b = models
    no_head = {k: v for k, v in b.state_dict().items() if not k.startswith("head")}
    with pytest.raises(MedlibError, match=r"head\.weight: in pretrained, missing from finetuned\[1\]"):
        merge(pre, [a, no_head])
    extra = dict(b.state_dict(), **{"extra.weight": torch.zeros(1)})
    with pytest.raises(MedlibError, match=r"extra\.weight: in finetuned\[0\], not in pretrained"):
        merge(pre, [extra])
    with pytest.raises(MedlibError, match=r"conv\.weight: dtype torch\.float32 in pretrained, torch\.float64"):
        merge(pre, [a, b.double()])
    with pytest.raises(MedlibError, match="only in left operand"):
        DataVector.between(pre, a) + DataVector.between(pre, a).only(lambda k, v: k.startswith("conv"))


def test_non_finite_values_are_named(models):
    pre, a, b = models
    with torch.no_grad():
        b.bn.weight[1] = float("nan")
    with pytest.raises(MedlibError, match=r"'bn\.weight'.*finetuned\[1\]"):
        merge(pre, [a, b], "data_vector")
    with pytest.raises(MedlibError, match=r"'bn\.weight'.*finetuned\[1\]"):
        merge(pre, [a, b], "params_mean")
    with pytest.raises(MedlibError, match=r"'bn\.weight'"):
        DataVector.between(pre, b)
    with torch.no_grad():
        b.bn.weight[1] = 1.0
        b.bn.running_var[0] = float("inf")
    with pytest.raises(MedlibError, match=r"'bn\.running_var'.*finetuned\[1\]"):
        merge(pre, [a, b], "data_vector")


def test_bad_arguments(models):
    pre, a, _ = models
    with pytest.raises(MedlibError, match="unknown merge method"):
        merge(pre, [a], "average")
    with pytest.raises(MedlibError, match="non-empty list"):
        merge(pre, [])
    with pytest.raises(MedlibError, match="non-empty list"):
        merge(pre, a)


def test_merge_equals_a_per_key_reference_on_a_larger_model():
    torch.manual_seed(0)
    pre = nn.Sequential(nn.Linear(40, 30), nn.BatchNorm1d(30), nn.Linear(30, 20))
    sites = [nn.Sequential(nn.Linear(40, 30), nn.BatchNorm1d(30), nn.Linear(30, 20)) for _ in range(3)]
    reference = {k: pre.state_dict()[k] + 0.5 * sum(s.state_dict()[k] - pre.state_dict()[k] for s in sites)
                 for k, _ in pre.named_parameters()}
    merged = merge(pre, sites, "data_vector", lam=0.5).state_dict()
    for k, v in reference.items():
        assert torch.allclose(merged[k], v, atol=1e-6), k


# --------------------------------------------------------------------------- TIES and DARE


def vec(**tensors) -> DataVector:
    return DataVector({k: torch.tensor(v, dtype=torch.float32) for k, v in tensors.items()})


def test_ties_trims_elects_and_takes_the_disjoint_mean_by_hand():
    t1 = vec(w=[1.0, -2.0], b=[0.5, 3.0])
    t2 = vec(w=[-1.5, 0.2], b=[0.1, 2.0])
    t3 = vec(w=[0.3, 1.0], b=[-4.0, 0.4])
    # density ½ of 4 values keeps 2 per vector, over the whole flattened vector (w and b together):
    # t1 → [0, −2 | 0, 3], t2 → [−1.5, 0 | 0, 2], t3 → [0, 1 | −4, 0]; sum [−1.5, −1 | −4, 5]
    # elected signs [−, −, −, +]; disjoint means: −1.5, −2 (the 1 disagrees), −4, (3 + 2)/2
    merged = DataVector.ties([t1, t2, t3], density=0.5)
    assert list(merged.keys()) == ["w", "b"]
    close(merged["w"], [-1.5, -2.0])
    close(merged["b"], [-4.0, 2.5])
    # density 1 keeps everything: signs of [−0.2, −0.8 | −3.4, 5.4]; agreeing means
    full = DataVector.ties([t1, t2, t3], density=1.0)
    close(full["w"], [-1.5, -2.0])
    close(full["b"], [-4.0, (3.0 + 2.0 + 0.4) / 3])
    with pytest.raises(MedlibError, match="density"):
        DataVector.ties([t1, t2], density=0.0)
    with pytest.raises(MedlibError, match="only in left operand"):
        DataVector.ties([t1, vec(w=[1.0, 1.0])], density=0.5)


def test_ties_merge_of_models_by_hand(models):
    pre, a, b = models
    before = snapshot(pre, a, b)
    # density 1: no trimming. τ_a = [1, 0 | .5, 0 | 0, .5 | 0, 0], τ_b = [0, 2 | −.5, 1 | −.5, 0 | .2, 0]
    # (conv.weight | conv.bias | bn.weight | bn.bias). Sum signs [+, +, 0, +, −, +, +, 0]: the zeros
    # take the majority sign (+), as in the authors' code; conv.bias[0] keeps τ_a's 0.5.
    merged = merge(pre, [a, b], "ties", lam=1.0, density=1.0)
    close(merged.conv.weight, [2, 4])
    close(merged.conv.bias, [0.5, 1])
    close(merged.bn.weight, [0.5, 1.5])
    close(merged.bn.bias, [0.2, 0])
    close(merged.head.weight, [[2, 0], [0, 0]])  # heads and buffers as for the data vector
    close(merged.bn.running_var, [0.3, 0.6])
    assert merged.bn.num_batches_tracked.item() == 10
    assert same(before, [pre, a, b])
    lam = 0.7
    expected = DataVector.ties([DataVector.between(pre, m) for m in (a, b)], 0.25).apply_to(pre, scale=lam)
    ours = merge(pre, [a, b], "ties", lam=lam, density=0.25)
    for k in split_keys(pre).vector:
        assert torch.allclose(ours.state_dict()[k], expected.state_dict()[k], atol=1e-6), k


def test_dare_keeps_a_fraction_and_rescales_statistically():
    n, p = 200_000, 0.9
    tau = vec(w=torch.linspace(0.5, 1.5, n).tolist())
    dropped = tau.dare(p, seed=0)
    kept = dropped["w"] != 0
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sigma
    assert torch.allclose(dropped["w"][kept], tau["w"][kept] / (1 - p), rtol=1e-6)  # rescaled by 1/(1 − p)
    assert dropped["w"].sum().item() == pytest.approx(tau["w"].sum().item(), rel=0.02)  # unbiased
    assert torch.equal(tau.dare(p, seed=0)["w"], dropped["w"])
    assert not torch.equal(tau.dare(p, seed=1)["w"], dropped["w"])
    assert torch.equal(tau.dare(0.0, seed=3)["w"], tau["w"])
    with pytest.raises(MedlibError, match="drop"):
        tau.dare(1.0)


def test_dare_merge_drops_per_site_and_sums_with_lambda(models):
    pre, a, b = models
    assert_same = lambda x, y: all(torch.equal(x.state_dict()[k], y.state_dict()[k]) for k in x.state_dict())  # noqa: E731
    assert assert_same(merge(pre, [a, b], "dare", lam=0.5, drop=0.0), merge(pre, [a, b], "data_vector", lam=0.5))
    merged = merge(pre, [a], "dare", lam=2.0, drop=0.5, seed=7)
    tau, moved = DataVector.between(pre, a), DataVector.between(pre, merged)
    for k in tau.keys():  # each value is dropped (0) or kept and doubled, times λ = 2
        ok = torch.isclose(moved[k], torch.zeros_like(moved[k])) | torch.isclose(moved[k], 4 * tau[k])
        assert ok.all(), k
    close(merged.head.bias, [1, -1])
    assert assert_same(merged, merge(pre, [a], "dare", lam=2.0, drop=0.5, seed=7))


def test_merge_arguments_of_other_methods_are_refused(models):
    pre, a, b = models
    with pytest.raises(MedlibError, match="density"):
        merge(pre, [a, b], "data_vector", density=0.2)
    with pytest.raises(MedlibError, match="drop"):
        merge(pre, [a, b], "ties", drop=0.9)
    with pytest.raises(MedlibError, match="include_buffers"):
        merge(pre, [a, b], "ties", include_buffers=True)


def test_data_vector_round_trips_through_safetensors(models, tmp_path):
    pre, a, _ = models
    tau = DataVector.between(pre, a)
    tau.save(tmp_path / "tau.safetensors", {"site": 1})
    back = DataVector.load(tmp_path / "tau.safetensors")
    assert list(back.keys()) == list(tau.keys()) and all(torch.equal(back[k], tau[k]) for k in tau)
    from medlib.io import save_weights

    save_weights(tmp_path / "model.safetensors", a.state_dict(), {"arch": "tiny"})
    with pytest.raises(MedlibError, match="not a data vector"):
        DataVector.load(tmp_path / "model.safetensors")
