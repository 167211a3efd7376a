"""Paper A's classifier (§4.1): a pretrained timm backbone, *with* its ImageNet output layer ``fc``, plus a new
``Linear(backbone.num_classes → num_classes)`` head, as the paper "added a new classification layer after the
output layer of ResNet50" (no activation between them). Every ``backbone.*`` parameter enters the data
vector; ``head.*`` is new (``Classifier.new_layers``) and averaged across sites (:mod:`medlib.vectors`).
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from medlib.errors import MedlibError

__all__ = ["Classifier", "create_backbone", "create_classifier", "normalization", "save_classifier", "load_classifier"]


class Classifier(nn.Module):
    """``head(backbone(x))`` (§4.1); ``new_layers`` have no pretrained values, so data vectors skip them."""

    new_layers: tuple[str, ...] = ("head",)

    def __init__(self, backbone: nn.Module, num_classes: int, arch: str | None = None):
        super().__init__()
        out_features = getattr(backbone, "num_classes", None)
        if not isinstance(out_features, int) or out_features <= 0:
            raise MedlibError(f"the backbone {type(backbone).__name__} has no positive integer `num_classes` (got "
                              f"{out_features!r}); expected a timm classification model whose output layer is kept "
                              "(e.g. timm.create_model('resnet50'))")
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


def _checked_model(path, what: str, build, state: dict[str, torch.Tensor]) -> nn.Module:
    """``build()`` holding a file's ``state``: shapes compared first on the meta device (lying metadata, e.g. a
    200000000-way layer, allocates nothing), NaN or infinite weights refused."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    wrong = [f"{k} {shapes[k]} (expected {expected[k]})" for k in sorted(expected.keys() & shapes.keys())
             if tuple(shapes[k]) != expected[k]]
    if missing or unexpected or wrong:
        raise MedlibError(f"{path} does not match {what}: missing keys {missing[:5]}, unexpected keys "
                          f"{unexpected[:5]}, other shapes {wrong[:5]}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise MedlibError(f"{path} holds NaN or infinite weights ({len(bad)} tensors, first {bad[0]}): "
                          "the training that wrote it diverged; use another model")
    model = build()
    model.load_state_dict(state)
    return model


def _load_backbone_file(arch: str, path: Path) -> nn.Module:
    from medlib.io import load_weights

    if not path.is_file():
        raise MedlibError(f"pretrained weights file {path} does not exist; expected a safetensors file with the "
                          f"{arch} backbone (e.g. timm's Hugging Face `model.safetensors`, or the file medlib.pretrain "
                          "writes). Check the path.")
    state = load_weights(path, require_metadata=False)[0]  # refuses pickles and truncated files in one line
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if any(k.startswith("backbone.") for k in shapes):
        raise MedlibError(f"{path} holds a whole medlib classifier (keys backbone.*/head.*), not a backbone; "
                          "load it with medlib.models.load_classifier(path)")
    fc = _pretrained_cfg(arch).get("classifier") or "fc"
    fc = fc if isinstance(fc, str) else fc[0]
    if len(shapes.get(f"{fc}.weight", ())) != 2:
        raise MedlibError(f"{path} has no 2-D `{fc}.weight`: it is not a {arch} backbone with its output layer "
                          f"(first keys: {sorted(shapes)[:5]}). Expected the state dict of "
                          f"timm.create_model({arch!r}).")
    classes = shapes[f"{fc}.weight"][0]
    return _checked_model(path, f"timm {arch!r} with {classes} outputs (pass the architecture the file was saved "
                          "from)", lambda: timm.create_model(arch, pretrained=False, num_classes=classes), state)


def create_backbone(arch: str, pretrained: bool = False, pretrained_path: str | os.PathLike | None = None,
                    backbone_classes: int | None = None) -> nn.Module:
    """A timm model with its own output layer: θ_pre from ``pretrained_path`` (local safetensors) or
    ``pretrained=True`` (a hub download: Colab, not offline), else a random init."""
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
        raise MedlibError(f"could not download pretrained {arch!r} weights ({exc}). On an offline machine "
                          "download `model.safetensors` elsewhere and pass pretrained_path=...") from exc


def create_classifier(arch: str, num_classes: int, pretrained: bool = False,
                      pretrained_path: str | os.PathLike | None = None, *,
                      backbone_classes: int | None = None) -> Classifier:
    """Paper A's model (§4.1): timm ``arch`` (ResNet50) + a new ``Linear`` head; backbone as :func:`create_backbone`."""
    return Classifier(create_backbone(arch, pretrained, pretrained_path, backbone_classes), num_classes, arch=arch)


def save_classifier(path: str | os.PathLike, model: Classifier, metadata: dict | None = None) -> None:
    """Write a site's classifier as safetensors (what sites exchange; never a pickle)."""
    from medlib.io import save_weights

    if not isinstance(model, Classifier) or not model.arch:
        raise MedlibError("save_classifier expects a medlib.models.Classifier built with an arch name")
    meta = dict(metadata or {})
    meta.update(arch=model.arch, num_classes=model.num_classes, backbone_classes=model.backbone_classes)
    save_weights(path, model.state_dict(), meta)


def _classifier_metadata(path, meta: dict) -> tuple[str, int, int]:
    missing = [k for k in ("arch", "num_classes", "backbone_classes") if k not in meta]
    if missing:
        raise MedlibError(f"{path} lacks classifier metadata {missing}; write it with save_classifier")
    arch, counts = meta["arch"], {k: meta[k] for k in ("num_classes", "backbone_classes")}
    if not isinstance(arch, str) or not timm.is_model(arch):
        raise MedlibError(f"{path} names architecture {arch!r}, which timm does not have")
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MedlibError(f"{path} has {key} {value!r} in its metadata: expected a positive integer")
    return arch, counts["num_classes"], counts["backbone_classes"]


def load_classifier(path: str | os.PathLike) -> tuple[Classifier, dict]:
    """``(model, metadata)`` from :func:`save_classifier`'s file; lying metadata and NaN/inf weights are refused."""
    from medlib.io import load_weights, read_metadata

    arch, num_classes, backbone_classes = _classifier_metadata(path, read_metadata(path))
    state, meta = load_weights(path)
    what = f"a {arch} classifier for {num_classes} classes ({backbone_classes} backbone outputs) as its metadata says"
    return _checked_model(path, what, lambda: create_classifier(arch, num_classes, backbone_classes=backbone_classes),
                          state), meta
