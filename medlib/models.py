"""Paper A's classifier: a pretrained timm backbone plus the new classification layer (§4.1).

The paper fine-tunes ImageNet ResNet50 and, because its 1000-way output does not match the
downstream classes, "added a new classification layer after the output layer of ResNet50".
Read literally, that keeps the pretrained 1000-way ``fc`` and puts a fresh
``Linear(1000 → num_classes)`` on top. This module does exactly that::

    Classifier
    ├── backbone   timm model, *including* its pretrained output layer ``fc``
    └── head       nn.Linear(backbone.num_classes, num_classes), new, randomly initialised

State-dict keys are therefore ``backbone.*`` and ``head.*``. The distinction matters for the
data vectors (§3.2, §4.1): "we only considered layers with pretrained parameters and ignored
the classification layer", so every ``backbone.*`` parameter — the pretrained ``fc``
included — enters the vector, while ``head.*`` is declared new (``Classifier.new_layers``)
and is averaged across sites instead (see :mod:`medlib.vectors`).

No activation sits between ``fc`` and ``head``: the paper names none, so the head reads the
ImageNet logits linearly.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from medlib.errors import MedlibError

__all__ = [
    "Classifier",
    "create_backbone",
    "create_classifier",
    "normalization",
    "save_classifier",
    "load_classifier",
]


class Classifier(nn.Module):
    """``head(backbone(x))``: the paper's fine-tuning model (§4.1).

    ``new_layers`` names the sub-modules that have no pretrained values; data vectors skip them.
    """

    new_layers: tuple[str, ...] = ("head",)

    def __init__(self, backbone: nn.Module, num_classes: int, arch: str | None = None):
        super().__init__()
        out_features = getattr(backbone, "num_classes", None)
        if not isinstance(out_features, int) or out_features <= 0:
            raise MedlibError(
                f"the backbone {type(backbone).__name__} has no positive integer `num_classes` "
                f"(got {out_features!r}); expected a timm classification model whose output "
                "layer is kept (e.g. timm.create_model('resnet50'))"
            )
        if num_classes < 1:
            raise MedlibError(f"num_classes must be >= 1, got {num_classes}")
        self.arch = arch or getattr(backbone, "default_cfg", {}).get("architecture")
        self.backbone = backbone
        self.head = nn.Linear(out_features, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def backbone_classes(self) -> int:
        return self.head.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _pretrained_cfg(arch: str):
    cfg = timm.get_pretrained_cfg(arch)
    if cfg is None:  # an architecture without a registered pretrained config
        cfg = timm.create_model(arch, pretrained=False).pretrained_cfg
    return cfg if isinstance(cfg, dict) else cfg.to_dict()


def normalization(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` the timm weights of ``arch`` expect; use it for every image pipeline."""
    cfg = _pretrained_cfg(arch)
    return tuple(cfg["mean"]), tuple(cfg["std"])


def _classifier_key(arch: str) -> str:
    name = _pretrained_cfg(arch).get("classifier") or "fc"
    return name if isinstance(name, str) else name[0]


def _load_backbone_file(arch: str, path: Path) -> nn.Module:
    """Build ``arch`` from a local safetensors file holding a bare backbone state dict."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise MedlibError(
            f"pretrained weights file {path} does not exist; expected a safetensors file with "
            f"the {arch} backbone (e.g. timm's Hugging Face `model.safetensors`, or the file "
            "medlib.pretrain writes). Check the path."
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MedlibError(
            f"{path} is not a readable safetensors file ({exc}). medlib only loads "
            "safetensors, because unpickling a .pth/.bin file can run code; convert it with "
            "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')."
        ) from exc
    if any(k.startswith("backbone.") for k in state):
        raise MedlibError(
            f"{path} holds a whole medlib classifier (keys backbone.*/head.*), not a backbone; "
            "load it with medlib.models.load_classifier(path)"
        )
    fc = _classifier_key(arch)
    if f"{fc}.weight" not in state:
        raise MedlibError(
            f"{path} has no `{fc}.weight`: it is not a {arch} backbone with its output layer "
            f"(first keys: {sorted(state)[:5]}). Expected the state dict of "
            f"timm.create_model({arch!r})."
        )
    backbone = timm.create_model(arch, pretrained=False, num_classes=state[f"{fc}.weight"].shape[0])
    result = backbone.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise MedlibError(
            f"{path} does not match timm {arch!r}: missing keys {result.missing_keys[:10]}, "
            f"unexpected keys {result.unexpected_keys[:10]}. Pass the architecture the file was "
            "saved from."
        )
    return backbone


def create_backbone(
    arch: str,
    pretrained: bool = False,
    pretrained_path: str | os.PathLike | None = None,
    backbone_classes: int | None = None,
) -> nn.Module:
    """A timm model with its own output layer: θ_pre when pretrained, else a random init.

    ``pretrained_path`` (a local safetensors file) wins over ``pretrained=True`` (a download
    from the timm / Hugging Face hub, which works on Colab but not offline).
    """
    if pretrained_path is not None:
        return _load_backbone_file(arch, Path(pretrained_path))
    kwargs = {} if backbone_classes is None else {"num_classes": backbone_classes}
    try:
        return timm.create_model(arch, pretrained=pretrained, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise MedlibError(f"timm has no architecture {arch!r}: {exc}") from exc
        raise
    except OSError as exc:  # hub unreachable (offline machine, firewall)
        raise MedlibError(
            f"could not download pretrained {arch!r} weights ({exc}). On an offline machine "
            "download `model.safetensors` elsewhere and pass pretrained_path=..."
        ) from exc


def create_classifier(
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    pretrained_path: str | os.PathLike | None = None,
    *,
    backbone_classes: int | None = None,
) -> Classifier:
    """Paper A's model (§4.1): timm ``arch`` (ResNet50 in the paper) + a new ``Linear`` head.

    ``pretrained=True`` downloads timm's ImageNet weights (``resnet50`` resolves to timm's
    default tag; ``resnet50.tv_in1k`` are torchvision's original weights). ``pretrained_path``
    loads a local safetensors backbone instead; its output-layer size is read from the file.
    """
    backbone = create_backbone(arch, pretrained, pretrained_path, backbone_classes)
    return Classifier(backbone, num_classes, arch=arch)


def save_classifier(path: str | os.PathLike, model: Classifier, metadata: dict | None = None) -> None:
    """Write a site's classifier as safetensors (what sites exchange; never a pickle)."""
    from medlib.io import save_weights

    if not isinstance(model, Classifier) or not model.arch:
        raise MedlibError("save_classifier expects a medlib.models.Classifier built with an arch name")
    meta = dict(metadata or {})
    meta.update(arch=model.arch, num_classes=model.num_classes, backbone_classes=model.backbone_classes)
    save_weights(path, model.state_dict(), meta)


def load_classifier(path: str | os.PathLike) -> tuple[Classifier, dict]:
    """Rebuild a classifier written by :func:`save_classifier`; returns ``(model, metadata)``."""
    from medlib.io import load_weights

    state, meta = load_weights(path)
    missing = [k for k in ("arch", "num_classes", "backbone_classes") if k not in meta]
    if missing:
        raise MedlibError(f"{path} lacks classifier metadata {missing}; write it with save_classifier")
    model = create_classifier(meta["arch"], meta["num_classes"], backbone_classes=meta["backbone_classes"])
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise MedlibError(
            f"{path} does not match a {meta['arch']} classifier: missing {result.missing_keys[:10]}, "
            f"unexpected {result.unexpected_keys[:10]}"
        )
    return model, meta
