"""Paper A's experiment plumbing: devices, private restoration, cache keys, test splits, the sketch."""

import copy
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from medlib.data.partition import partition_sites
from medlib.experiments.data import SiteData
from medlib.experiments.paper_a import (PAPER_TEST_SIZES, Trained, artifact_key, implied_test_size,
                                        restore_on_parts, sketch_coordinates)
from medlib.experiments.paper_a import runs
from medlib.models import Classifier
from medlib.profiles import SMOKE
from medlib.vectors import DataVector

P = dataclasses.replace(SMOKE, paper_a=dataclasses.replace(SMOKE.paper_a, batch_size=8))


class TinyBackbone(nn.Module):
    num_classes = 5

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(4, 5))

    def forward(self, x):
        return self.body(x)


def tiny_trained(profile=P, n: int = 80, seed: int = 0) -> Trained:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 12, 12), generator=g, dtype=torch.uint8)
    labels = np.arange(n) % 3
    data = SiteData(SimpleNamespace(classes=["a", "b", "c"]), images, labels, partition_sites(labels, 4, seed=0))
    torch.manual_seed(0)
    pre = Classifier(TinyBackbone(), 3, arch="tiny").eval()
    return Trained("retina", profile, 0, data, pre, [copy.deepcopy(pre) for _ in range(4)], copy.deepcopy(pre),
                   device=torch.device("cpu"))


def test_accuracy_moves_the_model_to_the_device_the_data_goes_to(monkeypatch):
    tr = tiny_trained()
    cpu_model = copy.deepcopy(tr.pretrained)
    cpu_batches = tr.test_loader
    expected = tr.accuracy(cpu_model)
    seen = []
    real_predict = runs.predict

    def predict_on(model, loader, device=None, **kw):  # records where model and data are, computes on the CPU
        x, _ = next(iter(loader))
        seen.append((next(model.parameters()).device, torch.device(device), x.device))
        return real_predict(cpu_model, cpu_batches, torch.device("cpu"), **kw)

    monkeypatch.setattr(runs, "predict", predict_on)
    tr.device = torch.device("meta")  # the data goes to another device than the CPU model's
    assert tr.accuracy(copy.deepcopy(tr.pretrained)) == expected
    meta = torch.device("meta")
    assert seen == [(meta, meta, meta)]


def test_restoring_on_part_i_uses_part_i_alone(monkeypatch):
    tr = tiny_trained()
    alone = restore_on_parts(tr, tr.pretrained, [0], "finetune_epoch")
    # The other hospitals' data become unavailable, and their labels change: nothing may differ.
    others = np.concatenate(tr.data.partition.sites[1:])
    tr.data.labels[others] = 0
    tr.data.images[others] = 0
    real_loader = Trained.part_loader

    def only_part_0(self, part, *, train):
        if part != 0:
            raise AssertionError(f"part {part}'s data is not available to hospital 1")
        return real_loader(self, part, train=train)

    monkeypatch.setattr(Trained, "part_loader", only_part_0)
    again = restore_on_parts(tr, tr.pretrained, [0], "finetune_epoch")
    for (k, v), w in zip(alone.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k
    assert not torch.equal(alone.head.weight, tr.pretrained.head.weight)  # it did train
    stats = restore_on_parts(tr, tr.pretrained, [0], "recompute_stats")  # deterministic inputs
    assert torch.equal(stats.state_dict()["backbone.body.1.running_mean"],
                       restore_on_parts(tr, tr.pretrained, [0], "recompute_stats").state_dict()["backbone.body.1.running_mean"])


def test_artifact_key_follows_what_determines_the_weights():
    tr = tiny_trained()
    idx = tr.data.partition.sites[0]
    key = artifact_key(tr, idx)
    other_lam = dataclasses.replace(P, paper_a=dataclasses.replace(P.paper_a, lam=0.9, lam_grid=(0.3,), datasets=("retina",)))
    assert artifact_key(tiny_trained(other_lam), idx) == key  # λ never retrains a model
    for change in ({"lr": 1e-4}, {"weights": "resnet50.tv_in1k"}, {"epochs": 3}):
        changed = dataclasses.replace(P, paper_a=dataclasses.replace(P.paper_a, **change))
        assert artifact_key(tiny_trained(changed), idx) != key, change
    assert artifact_key(tiny_trained(dataclasses.replace(P, max_steps=2)), idx) != key
    assert artifact_key(tr, tr.data.partition.sites[1]) != key
    assert artifact_key(tiny_trained(seed=1), idx) != key  # other image content
    retrained = tiny_trained()
    with torch.no_grad():
        retrained.pretrained.head.bias.add_(1.0)  # another θ_pre
    assert artifact_key(retrained, idx) != key


def test_max_steps_caps_every_loader_and_the_generator_is_reseedable():
    tr = tiny_trained(dataclasses.replace(P, max_steps=1))
    assert len(list(tr.test_loader)) == 1 and len(tr.test_loader) == 1
    loader = tiny_trained().loader(np.arange(20), train=True)
    assert len(list(loader)) == 3 == len(loader)  # 20 images in batches of 8
    assert isinstance(loader.generator, torch.Generator)  # what fit re-seeds every epoch


def test_the_tables_imply_the_test_sizes():
    assert {d: implied_test_size(d) for d in PAPER_TEST_SIZES} == PAPER_TEST_SIZES


def test_real_data_gets_the_papers_test_size_grouped_and_bladder_its_official_split(monkeypatch, tmp_path):
    from medlib.data import load_dataset
    from medlib.data.synth import synthesize

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    ds = load_dataset("bladder-tissue", synthesize("bladder-tissue", tmp_path / "bladder", seed=0, size="small"))
    monkeypatch.setattr(runs, "ensure_dataset", lambda name, profile: ds)
    monkeypatch.setitem(runs.PAPER_TEST_SIZES, "bladder-tissue", 40)
    real = dataclasses.replace(P, data_source="real", paper_a=dataclasses.replace(P.paper_a, image_size=16))
    part = runs.paper_sites("bladder-tissue", real, 0).partition
    groups = np.asarray(ds.groups)
    assert abs(len(part.test) - 40) <= max(np.unique(groups, return_counts=True)[1])  # whole cases
    assert not set(groups[part.test]) & set(groups[part.train])
    official = runs.paper_sites("bladder-tissue", real, 0, split="official").partition
    assert np.array_equal(official.test, np.sort(ds.splits["test"]))
    assert len(official.train) + len(official.test) == len(ds.labels)
    smoke = runs.paper_sites("bladder-tissue", dataclasses.replace(real, data_source="synthetic"), 0).partition
    biggest_case = max(np.unique(groups, return_counts=True)[1])
    assert abs(len(smoke.test) - P.paper_a.test_fraction * len(ds.labels)) <= biggest_case  # stand-ins: the fraction


def test_sketch_is_an_isometry_for_vectors_in_a_plane():
    def v(x, y):
        return DataVector({"w": torch.tensor([x, y], dtype=torch.float64)})

    taus = {"site 1": v(2.0, 0.0), "site 2": v(0.0, 1.0), "site 3": v(1.0, 1.0)}
    coords = sketch_coordinates(taus, full=v(1.0, 2.0), lam=0.5)
    original = {"θ_pre": (0, 0), "site 1": (2, 0), "site 2": (0, 1), "site 3": (1, 1), "mean (λ = 1/N)": (1, 2 / 3),
                "λ = 0.5": (1.5, 1.0), "full training": (1, 2)}
    names = list(original)
    for a in names:
        for b in names:
            d_orig = np.hypot(*np.subtract(original[a], original[b]))
            d_ours = np.hypot(*(coords.loc[a] - coords.loc[b]))
            assert d_ours == pytest.approx(d_orig, abs=1e-9), (a, b)
    # x runs along the mean vector (1, 2/3): θ_pre → mean is horizontal
    assert coords.loc["mean (λ = 1/N)", "y"] == pytest.approx(0.0, abs=1e-12)
    assert coords.loc["site 1", "y"] > 0
