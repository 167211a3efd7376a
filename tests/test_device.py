"""Every function that takes a device moves the model there (issue: a CPU model fed CUDA batches).

CPU machines have no second device, so the mismatch is planted with PyTorch's ``meta`` device:
the model sits on the CPU, the function is asked for ``meta``, and a forward pre-hook records
where the parameters and the inputs are when the model is called (then stops the run, since
``meta`` tensors hold no values). On a CUDA machine the same is checked end to end.
"""

import numpy as np
import pytest
import torch
from torch import nn

from medlib.train import TrainConfig, evaluate, fit, make_loader, predict


class Stop(Exception):
    pass


def planted(model):
    seen = []

    def record(module, args):
        seen.append((next(module.parameters()).device.type, args[0].device.type))
        raise Stop

    model.register_forward_pre_hook(record)
    return seen


def data(n=32):
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g))


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


CALLS = {
    "predict": lambda m, loader: predict(m, loader, "meta"),
    "evaluate": lambda m, loader: evaluate(m, loader, torch.device("meta"), 3),
    "fit": lambda m, loader: fit(m, loader, TrainConfig(lr=1e-3, epochs=1, device="meta", log_every=0)),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_model_on_cpu_is_moved_to_the_requested_device(name):
    m = model()
    assert next(m.parameters()).device.type == "cpu"
    seen = planted(m)
    with pytest.raises(Stop):
        CALLS[name](m, make_loader(data(), 16, shuffle=False))
    assert seen == [("meta", "meta")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_model_predicts_on_cuda_like_on_cpu():
    m = model().eval()
    loader = make_loader(data(), 16, shuffle=False)
    on_cpu, labels = predict(m, loader, "cpu")
    on_cuda, labels_cuda = predict(m.cpu(), loader, "cuda")
    assert next(m.parameters()).device.type == "cuda"
    np.testing.assert_allclose(on_cuda, on_cpu, atol=2e-2)  # bfloat16/float16 autocast on CUDA
    assert np.array_equal(labels, labels_cuda)
