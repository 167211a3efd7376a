"""Mixed precision and non-finite steps: a skipped float16 step is not a divergence."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from toy_training import learnable

from medlib.errors import MedlibError
from medlib.train import loop
from medlib.train import TrainConfig, choose_precision, fit, make_loader


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


class PlantedLoss:
    """Cross-entropy, except that the calls in ``bad`` (1-based) return ``value``; records each step."""

    def __init__(self, model, bad, value=math.inf):
        self.model, self.bad, self.value, self.calls = model, set(bad), value, 0
        self.losses, self.weights = [], []

    def __call__(self, out, y):
        self.calls += 1
        self.weights.append(self.model[0].weight.detach().clone())  # the weights this batch sees
        loss = F.cross_entropy(out.float(), y)
        self.losses.append(float(loss.detach()))
        return loss * self.value if self.calls in self.bad else loss


def test_precision_follows_the_device():
    assert not choose_precision(torch.device("cpu")).enabled  # amp on CUDA only by default
    fp16 = choose_precision(torch.device("cpu"), amp=True, dtype="float16")
    assert fp16.dtype == torch.float16 and fp16.needs_scaler and fp16.grad_scaler().is_enabled()
    bf16 = choose_precision(torch.device("cpu"), amp=True)
    assert bf16.dtype == torch.bfloat16 and not bf16.needs_scaler
    keeper = bf16.grad_scaler()  # kept for its skip rule only: scale 1, never grown
    assert keeper.is_enabled() and keeper.get_scale() == 1.0 and keeper.get_growth_interval() == 2**30
    if torch.cuda.is_available():
        chosen = choose_precision(torch.device("cuda"))
        assert chosen.dtype == (torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16)


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "float16+scaler"])
def test_one_infinite_loss_is_skipped_not_fatal(amp):
    model = mlp()
    loss_fn = PlantedLoss(model, bad={3})  # the third of six batches of epoch 1
    cfg = TrainConfig(lr=1e-2, epochs=2, seed=0, device="cpu", amp=amp, amp_dtype="float16" if amp else None,
                      log_every=0)
    history = fit(model, make_loader(learnable(), 16, shuffle=True), cfg, loss_fn=loss_fn)
    first, second = history.records
    assert first["skipped_steps"] == 1 and second["skipped_steps"] == 0
    # the planted step changed nothing: batch 4 sees the weights batch 3 saw
    assert torch.equal(loss_fn.weights[2], loss_fn.weights[3])
    assert not torch.equal(loss_fn.weights[1], loss_fn.weights[2])
    # the epoch loss averages the five finite batches (16 images each)
    finite = [v for i, v in enumerate(loss_fn.losses[:6], start=1) if i != 3]
    assert first["train_loss"] == pytest.approx(sum(finite) / 5, rel=1e-6)
    assert math.isfinite(second["train_loss"]) and all(torch.isfinite(p).all() for p in model.parameters())


def test_a_loss_that_stays_non_finite_is_a_divergence():
    """The run of skipped steps is read at the epoch's end (6 steps here): steps 5-12 skipped, then the stop."""
    model = mlp()
    cfg = TrainConfig(lr=1e-2, epochs=3, seed=0, device="cpu", log_every=0, max_nonfinite_steps=4)
    loss_fn = PlantedLoss(model, bad=range(5, 100), value=math.nan)  # from the fifth step on
    with pytest.raises(MedlibError, match="epoch 2: training diverged .8 steps in a row"):
        fit(model, make_loader(learnable(), 16, shuffle=True), cfg, loss_fn=loss_fn)
    assert loss_fn.calls == 12
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the skipped steps changed nothing


def test_the_run_of_skips_is_also_read_within_an_epoch(monkeypatch):
    """Every READ_EVERY steps (here 3): the run of 4 reaches the rule at the read before step 10."""
    monkeypatch.setattr(loop, "READ_EVERY", 3)
    model = mlp()
    cfg = TrainConfig(lr=1e-2, epochs=3, seed=0, device="cpu", log_every=0, max_nonfinite_steps=4)
    loss_fn = PlantedLoss(model, bad=range(5, 100), value=math.nan)
    with pytest.raises(MedlibError, match="epoch 2: training diverged .5 steps in a row"):
        fit(model, make_loader(learnable(), 16, shuffle=True), cfg, loss_fn=loss_fn)
    assert loss_fn.calls == 9  # reads after steps 3, 6 (epoch end: a run of 2) and 9 (run of 5)


def test_a_non_finite_weight_is_a_divergence():
    model = mlp()

    def poison(out, y):
        loss = F.cross_entropy(out, y)
        with torch.no_grad():
            model[2].bias[0] = math.inf  # e.g. an optimizer step that overflowed
        return loss

    with pytest.raises(MedlibError, match="diverged.*weight became non-finite"):
        fit(model, [learnable(16).tensors], TrainConfig(lr=1e-2, epochs=1, device="cpu", log_every=0), loss_fn=poison)
