"""Backbone registry: stage maps, pooling, and that nothing of the torchvision model is skipped."""

import pytest
import torch
from torch import nn

from medlib.ammfm import ConfigError, create_backbone, list_backbones


def test_registry_lists_the_four_backbones():
    assert list_backbones() == ["convnext_tiny", "mobilenet_v3_small", "resnet50", "swin_v2_t"]


@pytest.mark.parametrize("name", ["convnext_tiny", "mobilenet_v3_small", "resnet50", "swin_v2_t"])
def test_tiny_stage_maps_are_nchw_at_strides_4_to_32(name):
    torch.manual_seed(0)
    b = create_backbone(name, size="tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    maps = b.forward_stages(x)
    assert [tuple(m.shape) for m in maps] == [
        (2, c, 64 // s, 64 // s) for c, s in zip(b.stage_channels, (4, 8, 16, 32))
    ]
    assert b(x).shape == (2, b.num_features) and b.num_features == b.stage_channels[-1]


def _prelogits(model: nn.Module, name: str) -> nn.Module:
    """The torchvision model with only its final classifier layer removed."""
    if name == "mobilenet_v3_small":
        model.classifier = nn.Identity()
    elif name == "resnet50":
        model.fc = nn.Identity()
    elif name == "convnext_tiny":
        model.classifier[2] = nn.Identity()
    else:
        model.head = nn.Identity()
    return model


@pytest.mark.parametrize("name", ["convnext_tiny", "mobilenet_v3_small", "resnet50", "swin_v2_t"])
def test_pooled_features_equal_torchvision_prelogits(name):
    # Our stage-by-stage run (with Swin's NHWC<->NCHW permutes) must compute exactly what
    # torchvision's own forward computes up to its last Linear.
    torch.manual_seed(0)
    b = create_backbone(name, size="tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    ours = b(x)
    reference = _prelogits(b.model, name)(x)
    torch.testing.assert_close(ours, reference)


def test_full_stage_channels():
    with torch.device("meta"):
        got = {n: create_backbone(n).stage_channels for n in list_backbones()}
    assert got == {
        "mobilenet_v3_small": [16, 24, 48, 576],
        "swin_v2_t": [96, 192, 384, 768],
        "resnet50": [256, 512, 1024, 2048],
        "convnext_tiny": [96, 192, 384, 768],
    }


def test_bad_names_and_sizes_fail_clearly():
    with pytest.raises(ConfigError, match="unknown backbone 'vit'.*swin_v2_t"):
        create_backbone("vit")
    with pytest.raises(ConfigError, match="size='huge'"):
        create_backbone("resnet50", size="huge")
    with pytest.raises(ConfigError, match="only for size='full'"):
        create_backbone("resnet50", size="tiny", pretrained=True)


def test_failed_weight_download_says_what_to_do(monkeypatch):
    from urllib.error import URLError

    from torchvision.models._api import WeightsEnum

    from medlib.errors import MedlibError

    def offline(self, *args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(MedlibError, match="mobilenet_v3_small.*download.pytorch.org.*pretrained=False"):
        create_backbone("mobilenet_v3_small", pretrained=True)
