"""Paper A's classifier (timm backbone + new head) and the smoke profile's synthetic θ_pre."""

import dataclasses

import pytest
import torch

import medlib.pretrain as pretrain
from medlib.errors import MedlibError
from medlib.io import load_weights, save_weights
from medlib.models import Classifier, create_backbone, create_classifier, load_classifier, normalization, save_classifier
from medlib.profiles import FULL, SMOKE, dry_run
from medlib.vectors import DataVector, split_keys


TINY_A = dataclasses.replace(SMOKE.paper_a, image_size=32, pretrain_epochs=3, pretrain_images=480)


def test_classifier_is_backbone_with_its_output_layer_plus_a_new_head():
    model = create_classifier("test_resnet", 4)
    keys = list(model.state_dict())
    assert all(k.startswith(("backbone.", "head.")) for k in keys)
    assert keys[-2:] == ["head.weight", "head.bias"]
    assert model.head.in_features == 1000 == model.backbone_classes  # after ResNet's 1000-way fc
    assert model.num_classes == 4 and model.arch == "test_resnet"
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    roles = split_keys(model)
    assert "backbone.fc.weight" in roles.vector  # pretrained output layer: in the data vector
    assert roles.new == ("head.weight", "head.bias")  # the new layer: averaged instead
    assert "backbone.bn1.running_var" in roles.float_buffers


def test_pretrained_path_loads_a_local_safetensors_backbone(tmp_path):
    torch.manual_seed(0)
    source = create_backbone("test_resnet", backbone_classes=24)
    path = tmp_path / "backbone.safetensors"
    save_weights(path, source.state_dict(), {"arch": "test_resnet"})
    model = create_classifier("test_resnet", 3, pretrained_path=path)
    assert model.backbone_classes == 24  # read from the file's fc
    for k, v in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    # a second classifier from the same θ_pre differs only in the head: the data vector is zero
    other = create_classifier("test_resnet", 3, pretrained_path=path)
    assert DataVector.between(model, other).norm() == 0.0
    assert not torch.equal(model.head.weight, other.head.weight)


def test_bad_pretrained_files_are_explained(tmp_path):
    pickle = tmp_path / "weights.pth"
    torch.save(create_backbone("test_resnet").state_dict(), pickle)
    with pytest.raises(MedlibError, match="safetensors"):
        create_classifier("test_resnet", 3, pretrained_path=pickle)
    with pytest.raises(MedlibError, match="does not exist"):
        create_classifier("test_resnet", 3, pretrained_path=tmp_path / "missing.safetensors")
    whole = tmp_path / "classifier.safetensors"
    save_classifier(whole, create_classifier("test_resnet", 3))
    with pytest.raises(MedlibError, match="load_classifier"):
        create_classifier("test_resnet", 3, pretrained_path=whole)
    other_arch = tmp_path / "convnext.safetensors"
    save_weights(other_arch, create_backbone("test_convnext").state_dict(), {})
    with pytest.raises(MedlibError, match="test_resnet"):
        create_classifier("test_resnet", 3, pretrained_path=other_arch)
    with pytest.raises(MedlibError, match="no architecture"):
        create_classifier("resnet_does_not_exist", 3)


def test_offline_download_failure_is_explained(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(MedlibError, match="pretrained_path"):
        create_classifier("resnet50", 4, pretrained=True)


def test_save_and_load_classifier_round_trip(tmp_path):
    model = create_classifier("test_resnet", 5, backbone_classes=24)
    save_classifier(tmp_path / "site1.safetensors", model, {"site": 1})
    loaded, meta = load_classifier(tmp_path / "site1.safetensors")
    assert isinstance(loaded, Classifier) and meta["site"] == 1 and meta["num_classes"] == 5
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_normalization_follows_the_timm_weights():
    assert normalization("resnet50") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization("test_resnet") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


# --------------------------------------------------------------------------- synthetic θ_pre


def test_synthetic_source_task_is_deterministic_and_balanced():
    x, y = pretrain.synthetic_source_task(96, 24, seed=1)
    x2, y2 = pretrain.synthetic_source_task(96, 24, seed=1)
    x3, _ = pretrain.synthetic_source_task(96, 24, seed=2)
    assert x.shape == (96, 3, 24, 24) and x.dtype == torch.float32
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, x3)
    assert torch.bincount(y, minlength=24).tolist() == [4] * 24
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # classes differ visibly: per-class mean colours are not all alike
    means = torch.stack([x[y == c].mean((0, 2, 3)) for c in range(24)])
    assert float(means.std(0).min()) > 0.05


def test_pretrained_backbone_is_trained_cached_and_reused(tmp_path, monkeypatch):
    path = pretrain.pretrained_backbone_path(TINY_A, tmp_path, seed=0)
    state, meta = load_weights(path)
    assert meta["source_test_accuracy"] > 3 * meta["chance"]  # it learned the source task
    assert meta["arch"] == "test_resnet" and meta["epochs"] == 3 and meta["images"] == 480
    random_init = create_backbone("test_resnet", backbone_classes=pretrain.N_SOURCE_CLASSES)
    assert not torch.equal(state["conv1.0.weight"], random_init.state_dict()["conv1.0.weight"])

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(pretrain, "pretrain_backbone", must_not_run)
    assert pretrain.pretrained_backbone_path(TINY_A, tmp_path, seed=0) == path
    backbone = pretrain.pretrained_backbone(TINY_A, tmp_path, seed=0)
    for k, v in state.items():
        assert torch.equal(backbone.state_dict()[k], v)
    more_epochs = dataclasses.replace(TINY_A, pretrain_epochs=4)
    with pytest.raises(AssertionError, match="cache"):  # different settings, different cache key
        pretrain.pretrained_backbone_path(more_epochs, tmp_path, seed=0)


def test_full_profile_theta_pre_is_the_imagenet_download(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("medlib.models.create_backbone", lambda arch, pretrained=False, **kw: calls.append((arch, pretrained)))
    pretrain.pretrained_backbone(FULL.paper_a, tmp_path)
    assert calls == [("resnet50.tv_in1k", True)]  # torchvision's IMAGENET1K_V1, pinned
    pretrain.pretrained_backbone(dry_run(FULL).paper_a, tmp_path)  # a dry run downloads nothing
    assert calls[-1] == ("resnet50", False)
    with pytest.raises(MedlibError, match="pretrain_epochs=0"):
        pretrain.pretrained_backbone_path(FULL.paper_a, tmp_path)
