"""The compiled training step (CUDA's default) trains like the eager one; eager stays the CPU's default."""

import torch
from torch import nn

from medlib.train import TrainConfig, fit
from medlib.train.loop import compiled_for_training
from toy_training import learnable


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3))


def test_compiled_steps_give_the_eager_weights():
    """Same loader, same seed: after 2 epochs of 3 steps, weights agree to 1e-5.

    (Compiled kernels may fuse and round differently; aot_eager traces the same graph without
    inductor, which on two CPU cores would take minutes.)
    """
    x, y = learnable(48).tensors
    images = x.repeat_interleave(3, 1)[:, :16].reshape(48, 1, 4, 4)
    loader = [(images[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]
    weights = {}
    for choice in ("off", "aot_eager"):
        model = small_cnn()
        fit(model, loader, TrainConfig(lr=1e-2, epochs=2, device="cpu", log_every=0, compile=choice))
        weights[choice] = model.state_dict()
    assert any(not torch.equal(v, small_cnn().state_dict()[k]) for k, v in weights["off"].items())  # it trained
    for k, v in weights["off"].items():
        torch.testing.assert_close(weights["aot_eager"][k], v, rtol=1e-5, atol=1e-5, msg=k)


def test_eager_on_the_cpu_compiled_on_cuda_unless_switched_off(monkeypatch):
    model = nn.Linear(2, 2)
    monkeypatch.delenv("MEDLIB_COMPILE", raising=False)
    assert compiled_for_training(model, torch.device("cpu")) is model
    assert compiled_for_training(model, torch.device("cuda"), "off") is model
    compiled = compiled_for_training(model, torch.device("cuda"))  # compiles lazily: no GPU needed yet
    assert compiled is not model and next(compiled.parameters()) is model.weight  # the same weights train
    monkeypatch.setenv("MEDLIB_COMPILE", "off")
    assert compiled_for_training(model, torch.device("cuda")) is model
