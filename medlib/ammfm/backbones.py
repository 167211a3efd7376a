"""Feature extractors of the clinical and dermoscopic branches (paper B, Sec. 3.1 and 4.7), a timm-style registry.

``mobilenet_v3_small`` (the paper's MN; stage channels 16, 24, 48, 576), ``swin_v2_t`` (Swin V2-T,
the ST; 96-768), ``resnet50`` (256-2048), ``convnext_tiny`` (96-768). Each torchvision model is
wrapped whole (its unused ImageNet classifier counts in ``parameters()``: that reproduces the
paper's counts). All are cut into four stages at strides 4, 8, 16, 32, always NCHW (Swin's NHWC
maps are permuted), so equal inputs give equal H×W per stage. ``size="tiny"`` builds the same
torchvision classes at tiny widths and depths, so CPU smoke runs exercise the real code paths.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

from medlib.errors import MedlibError

from .errors import ConfigError

__all__ = ["Backbone", "register_backbone", "create_backbone", "list_backbones", "WEIGHTS", "weights_tag", "SIZES"]

SIZES = ("full", "tiny")
_TINY_CLASSES = 10  # the tiny stand-ins keep a (small) ImageNet-style classifier too


class Backbone(nn.Module):
    """A whole torchvision classifier (``model``) as a four-stage extractor; subclasses run a stage and pool."""

    def __init__(self, model: nn.Module, stage_channels: list[int], name: str, size: str):
        super().__init__()
        self.model = model
        self.stage_channels = list(stage_channels)
        self.num_features = self.stage_channels[-1]
        self.name = name
        self.size = size

    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage ``index`` (0 takes the image) on an NCHW tensor; return an NCHW map."""
        raise NotImplementedError

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Pool the last stage map (NCHW) into the ``(B, num_features)`` feature vector."""
        return torch.flatten(self.model.avgpool(x), 1)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All four stage maps (NCHW) of image batch ``x``."""
        maps = []
        for i in range(self.num_stages):
            maps.append(x := self.forward_stage(i, x))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled feature vector ``(B, num_features)`` of image batch ``x``."""
        return self.pool(self.forward_stages(x)[-1])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, size={self.size!r}, stage_channels={self.stage_channels}"


class _FeaturesBackbone(Backbone):
    """Backbones whose ``model.features`` is a flat Sequential cut at fixed indices."""

    def __init__(self, model, stage_channels, name, size, bounds=((0, 2), (2, 4), (4, 6), (6, 8))):
        super().__init__(model, stage_channels, name, size)
        self._bounds = list(bounds)  # plain ints, so no module is registered twice

    def forward_stage(self, index, x):
        start, stop = self._bounds[index]
        for j in range(start, stop):
            x = self.model.features[j](x)
        return x


class MobileNetV3Backbone(_FeaturesBackbone):
    """MobileNetV3-Small: ``features`` cut at strides 4/8/16/32; pooled = the 576-d conv output."""

    def __init__(self, model, name, size):
        # features[0] stem (s2), [1] s4, [2:4] s8, [4:9] s16, [9:13] s32 incl. the last 1x1 conv
        bounds = [(0, 2), (2, 4), (4, 9), (9, len(model.features))]
        channels = [model.features[stop - 1].out_channels for _, stop in bounds]
        super().__init__(model, channels, name, size, bounds)


class ConvNeXtBackbone(_FeaturesBackbone):
    """ConvNeXt: ``features`` = [stem, stage, down, stage, down, stage, down, stage]."""

    def __init__(self, model, name, size):
        channels = [model.features[0][0].out_channels] + [model.features[i][1].out_channels for i in (2, 4, 6)]
        super().__init__(model, channels, name, size)

    def pool(self, x):
        # the classifier's LayerNorm2d is the pre-logits norm; its Linear is not called
        return torch.flatten(self.model.classifier[0](self.model.avgpool(x)), 1)


class SwinV2Backbone(_FeaturesBackbone):
    """Swin V2: ``features`` = [patch embed, stage, merge, stage, merge, stage, merge, stage]; NHWC inside."""

    def __init__(self, model, name, size):
        channels = [model.features[0][0].out_channels] + [model.features[i].reduction.out_features for i in (2, 4, 6)]
        super().__init__(model, channels, name, size)

    def forward_stage(self, index, x):
        if index > 0:  # stage 0 takes the NCHW image; its patch embedding permutes itself
            x = x.permute(0, 2, 3, 1)
        return super().forward_stage(index, x).permute(0, 3, 1, 2)

    def pool(self, x):
        return super().pool(self.model.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


class ResNetBackbone(Backbone):
    """ResNet: stage 0 = stem + ``layer1``; stages 1-3 = ``layer2``-``layer4``."""

    _LAYERS = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, model, name, size):
        channels = []
        for layer_name in self._LAYERS:
            last = getattr(model, layer_name)[-1]
            conv = last.conv3 if hasattr(last, "conv3") else last.conv2
            channels.append(conv.out_channels)
        super().__init__(model, channels, name, size)

    def forward_stage(self, index, x):
        m = self.model
        if index == 0:
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return getattr(m, self._LAYERS[index])(x)


class _NarrowResNet(ResNet):
    """torchvision ``ResNet`` at tiny bottleneck widths (its constructor fixes 64-512; ``_make_layer`` is reused)."""

    def __init__(self, widths=(8, 16, 32, 64), layers=(1, 1, 1, 1), num_classes=_TINY_CLASSES):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (width, depth) in enumerate(zip(widths, layers)):
            setattr(self, f"layer{i + 1}", self._make_layer(Bottleneck, width, depth, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * Bottleneck.expansion, num_classes)


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register_backbone(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
    """Decorator: register factory ``fn(pretrained=False, size="full") -> Backbone`` under its name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


# Explicit torchvision weights, never "DEFAULT" (which moves when torchvision adds weights and
# would give ResNet-50 its V2 recipe): every backbone's original ImageNet-1k weights, V1 — for
# ResNet-50 the same IMAGENET1K_V1 as Paper A's θ_pre, the only ones of the other three.
WEIGHTS = {
    "mobilenet_v3_small": "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
    "swin_v2_t": "Swin_V2_T_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "convnext_tiny": "ConvNeXt_Tiny_Weights.IMAGENET1K_V1",
}


def weights_tag(name: str, pretrained: bool) -> str:
    """What initialises backbone ``name``: ``"torchvision:<enum>.IMAGENET1K_V1"`` or ``"random"``."""
    return f"torchvision:{WEIGHTS[name]}" if pretrained and name in WEIGHTS else "random"


def _full(name: str, pretrained: bool) -> nn.Module:
    return getattr(tvm, name)(weights=WEIGHTS[name] if pretrained else None)


@register_backbone
def mobilenet_v3_small(pretrained: bool = False, size: str = "full") -> Backbone:
    """MobileNetV3-Small (Howard et al., 2019): the light clinical branch of AFF."""
    model = (_full("mobilenet_v3_small", pretrained) if size == "full"
             else tvm.mobilenet_v3_small(width_mult=0.25, num_classes=_TINY_CLASSES))
    return MobileNetV3Backbone(model, "mobilenet_v3_small", size)


@register_backbone
def swin_v2_t(pretrained: bool = False, size: str = "full") -> Backbone:
    """Swin Transformer V2-Tiny: the paper's "Swin-Transformer" (ST), the default dermoscopy branch."""
    model = _full("swin_v2_t", pretrained) if size == "full" else SwinTransformer(
        patch_size=[4, 4], embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=[4, 4],
        stochastic_depth_prob=0.0, num_classes=_TINY_CLASSES, block=SwinTransformerBlockV2,
        downsample_layer=PatchMergingV2)
    return SwinV2Backbone(model, "swin_v2_t", size)


@register_backbone
def resnet50(pretrained: bool = False, size: str = "full") -> Backbone:
    """ResNet-50 (He et al., 2016), one of the dermoscopy backbones of Table 10."""
    return ResNetBackbone(_full("resnet50", pretrained) if size == "full" else _NarrowResNet(), "resnet50", size)


@register_backbone
def convnext_tiny(pretrained: bool = False, size: str = "full") -> Backbone:
    """ConvNeXt-Tiny (Liu et al., 2022a), one of the dermoscopy backbones of Table 10."""
    setting = [CNBlockConfig(c, out, 1) for c, out in ((16, 32), (32, 64), (64, 128), (128, None))]
    model = (_full("convnext_tiny", pretrained) if size == "full"
             else ConvNeXt(setting, stochastic_depth_prob=0.0, num_classes=_TINY_CLASSES))
    return ConvNeXtBackbone(model, "convnext_tiny", size)


def create_backbone(name: str, pretrained: bool = False, size: str = "full") -> Backbone:
    """Build registered backbone ``name``; ``pretrained`` downloads ImageNet weights, ``size`` is full or tiny."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backbone {name!r}: expected one of {list_backbones()}")
    if size not in SIZES:
        raise ConfigError(f"backbone {name!r}: size={size!r} is not one of {SIZES}; use 'full' or 'tiny'")
    if pretrained and size != "full":
        raise ConfigError(f"backbone {name!r}: pretrained ImageNet weights exist only for size='full' "
                          f"(got size={size!r}); pass pretrained=False for the tiny stand-ins")
    try:
        return _REGISTRY[name](pretrained=pretrained, size=size)
    except OSError as exc:  # urllib's URLError is an OSError
        if not pretrained:
            raise
        raise MedlibError(
            f"could not fetch torchvision's ImageNet weights for backbone {name!r}: {exc}. They come "
            f"from download.pytorch.org: run where it is reachable (e.g. Colab), copy the file into "
            f"{torch.hub.get_dir()}/checkpoints, or pass pretrained=False"
        ) from exc
