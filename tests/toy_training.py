"""A tiny learnable classification task shared by the trainer's tests."""

import torch


def learnable(n=96, seed=0):
    """``n`` points in 6-D labelled by the argmax of a fixed random linear map (3 classes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    return torch.utils.data.TensorDataset(x, y)
