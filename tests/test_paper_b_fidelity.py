"""Paper B as the paper and FusionM4Net's code do it: whole images resized, a learning-rate
schedule without a jump into SWA, best run vs mean, run keys by content, explicit weights, the
model's tensor shapes, and the paper's own AVG AUC definition."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from medlib.ammfm.tasks import TASK_CLASSES, TASKS
from medlib.experiments import paper_b as pb
from medlib.profiles import FULL, SMOKE, dry_run
from medlib.train import fit


# ----------------------------------------------------------------------------- preprocessing


def test_a_768_by_512_image_is_resized_whole_not_cropped(tmp_path):
    """Coloured bands at the left, right and top edges all survive at 224 × 224 (a centre crop
    of the 768 × 512 image would cut the side bands away entirely)."""
    from medlib.data.cache import cached_images

    pixels = np.full((512, 768, 3), 128, dtype=np.uint8)
    pixels[:, :96] = (255, 0, 0)  # left eighth: red
    pixels[:, -96:] = (0, 0, 255)  # right eighth: blue
    pixels[:64, 96:-96] = (0, 255, 0)  # top eighth: green
    path = tmp_path / "case.png"
    Image.fromarray(pixels).save(path)
    image = cached_images([path], 224, tmp_path / "cache", progress=False, fit=pb.RESIZE_FIT)[0].numpy()
    assert image.shape == (3, 224, 224)
    # 96 of 768 columns -> 28 of 224; 64 of 512 rows -> 28 of 224 (away from the blurred borders)
    np.testing.assert_array_equal(image[:, 112, 5], [255, 0, 0])
    np.testing.assert_array_equal(image[:, 112, 22], [255, 0, 0])
    np.testing.assert_array_equal(image[:, 112, 218], [0, 0, 255])
    np.testing.assert_array_equal(image[:, 5, 112], [0, 255, 0])
    np.testing.assert_array_equal(image[:, 112, 112], [128, 128, 128])
    assert abs(int(image[0, 112, 33]) - 128) <= 2  # the red band ends at column 28


# ----------------------------------------------------------------------------- learning rate


def replay_schedule(B):
    """Run the real trainer with the profile's schedule on a one-batch problem; return each epoch's lr."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    batch = (torch.randn(8, 4), torch.randint(0, 2, (8,)))
    history = fit(model, [batch], pb.training_config(B, seed=0, device="cpu"))
    return np.array([r["lr"] for r in history.records]), history


def test_full_profile_schedule_anneals_into_swa_without_a_jump():
    B = FULL.paper_b
    lrs, history = replay_schedule(B)
    swa_start = B.epochs - B.swa_epochs
    assert len(lrs) == B.epochs == 250 and lrs[0] == pytest.approx(B.lr)
    steps = np.diff(lrs)
    assert (steps <= 1e-18).all(), "the learning rate must never go up"
    # the step into the SWA phase is no larger than the cosine's largest step anywhere
    assert abs(lrs[swa_start] - lrs[swa_start - 1]) <= np.abs(steps).max() + 1e-18
    assert lrs[swa_start] == pytest.approx(B.lr * (1 + np.cos(np.pi * swa_start / B.epochs)) / 2, rel=1e-6)
    # the last epoch is annealed: its lr is a tiny fraction of the start (the "last epoch" baseline is converged)
    assert lrs[-1] < 1e-3 * B.lr
    assert history.swa_model is not None


def test_dry_run_and_smoke_use_the_same_schedule_shape():
    for P in (SMOKE, dry_run(FULL)):
        lrs, _ = replay_schedule(P.paper_b)
        assert (np.diff(lrs) <= 1e-18).all() and len(lrs) == P.paper_b.epochs


# ----------------------------------------------------------------------------- best run vs mean


def fake_run(correct: float, seed: int) -> pb.RunResult:
    """A single-modal run whose test predictions are right for the first ``correct`` share of cases."""
    n = 20
    targets = np.zeros((n, len(TASKS)), dtype=np.int64)
    targets[n // 2:] = 1
    preds = []
    for k, task in enumerate(TASKS):
        logp = np.full((n, len(TASK_CLASSES[task])), np.log(0.1))
        right = int(correct * n)
        for i in range(n):
            label = targets[i, k] if i < right else 1 - targets[i, k]
            logp[i, label] = np.log(0.8)
        preds.append(logp)
    return pb.RunResult(pb.Config(None, "swin_v2_t"), seed, f"k{seed}", None,
                        {"swa/tta": {"test": {"dermoscopy": preds}}}, {"test": targets},
                        {"settings": {"weight_grid": 4}}, {t: list(c) for t, c in TASK_CLASSES.items()})


def test_best_run_and_mean_are_reported_separately():
    result = pb.ConfigResult(pb.Config(None, "swin_v2_t"), [fake_run(0.6, 1), fake_run(0.9, 2), fake_run(0.75, 3)])
    assert result.best("avg_acc") == 1
    assert result.best_text("avg_acc", "avg_acc") == "90.0"
    assert result.text("avg_acc") == "75.0±15.0"


# ----------------------------------------------------------------------------- keys and weights


def test_initial_weights_are_explicit_torchvision_tags():
    from torchvision.models import get_weight

    from medlib.ammfm.backbones import WEIGHTS

    for name, tag in WEIGHTS.items():
        assert tag.endswith("IMAGENET1K_V1")
        get_weight(tag)  # a real torchvision weight enum, not "DEFAULT"
    cfg = pb.Config("mobilenet_v3_small", "resnet50", "aab")
    assert cfg.weights(True) == {"clinical": "torchvision:MobileNet_V3_Small_Weights.IMAGENET1K_V1",
                                 "dermoscopy": "torchvision:ResNet50_Weights.IMAGENET1K_V1"}
    assert cfg.weights(False) == {"clinical": "random", "dermoscopy": "random"}
    assert FULL.paper_b.pretrained and not SMOKE.paper_b.pretrained and not dry_run(FULL).paper_b.pretrained


def test_run_key_follows_content_and_training_settings_only():
    data = pb.PairData(None, torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, 3, 4, 4, dtype=torch.uint8),
                       np.zeros((3, 8), dtype=np.int64), {"train": np.array([0]), "valid": np.array([1]),
                                                          "test": np.array([2])}, "synthetic", "abc")
    cfg, B = pb.Config("mobilenet_v3_small", "swin_v2_t", "aab"), FULL.paper_b
    key = pb.run_key(cfg, B, 3315, data, None, True)
    # how many runs, the weight grid (searched later) and the base seed do not change a run
    same = dataclasses.replace(B, n_runs=3, weight_grid=7, seed=99)
    assert pb.run_key(cfg, same, 3315, data, None, True) == key
    assert pb.run_key(cfg, dataclasses.replace(B, lr=1e-4), 3315, data, None, True) != key
    assert pb.run_key(cfg, B, 3315, data, None, False) != key  # weights are part of the key
    assert pb.run_key(cfg, B, 3315, dataclasses.replace(data, fingerprint="abd"), None, True) != key
    assert pb.run_key(cfg, B, 3315, data, 2, True) != key


def test_a_recopied_dataset_keeps_its_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path / "home"))
    from medlib.data.derm7pt import Derm7pt

    first = pb.load_pairs(SMOKE, image_size=16)
    copy = tmp_path / "copy"
    shutil.copytree(first.dataset.root, copy, copy_function=shutil.copy)  # new files, new mtimes
    again = pb.load_pairs(SMOKE, dataset=Derm7pt(copy), image_size=16)
    assert again.fingerprint == first.fingerprint
    # one changed pixel is another dataset
    path = Derm7pt(copy).derm_paths[int(first.splits["train"][0])]
    pixels = np.array(Image.open(path).convert("RGB"))
    pixels[...] = 255 - pixels
    Image.fromarray(pixels).save(path)
    assert pb.load_pairs(SMOKE, dataset=Derm7pt(copy), image_size=16).fingerprint != first.fingerprint


def test_pair_batches_live_on_the_device_and_reshuffle_by_seed():
    data = pb.PairData(None, torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous(),
                       torch.zeros(10, 3, 2, 2, dtype=torch.uint8), np.arange(80).reshape(10, 8),
                       {"train": np.arange(10)}, "synthetic", "x")
    batches = pb.PairBatches(data, "train", 4, shuffle=True, seed=5, device="cpu", drop_last=True)
    assert len(batches) == 2
    def order(b):
        return [int(v) for (c, _), _ in b for v in c[:, 0, 0, 0]]

    first = order(batches)
    batches.generator.manual_seed(5)  # what fit does at the start of an epoch
    assert order(batches) == first and len(set(first)) == 8  # drop_last: 8 of 10 cases, no repeats
    batches.generator.manual_seed(6)
    assert order(batches) != first
    capped = pb.PairBatches(data, "train", 4, shuffle=False, seed=0, device="cpu", max_steps=1)
    (c, _), y = next(iter(capped))
    assert len(capped) == 1 and c[:, 0, 0, 0].tolist() == [0, 1, 2, 3] and y[:, 0].tolist() == [0, 8, 16, 24]


# ----------------------------------------------------------------------------- teaching helpers


def test_framework_shapes_come_from_a_forward_pass_of_the_full_model():
    shapes = pb.framework_shapes(FULL)
    row = lambda stage, branch, what: shapes[(shapes.stage == stage) & (shapes.branch == branch)  # noqa: E731
                                             & shapes.what.str.startswith(what)].iloc[0]["shape"]
    assert row("stage 1", "clinical", "mobilenet") == (1, 24, 28, 28)
    assert row("stage 1", "dermoscopy", "swin") == (1, 192, 28, 28)
    assert row("stage 1", "AAB", "C projected") == (1, 192, 28, 28)  # MobileNetV3's 24 channels projected to 192
    assert row("stage 1", "AAB", "M_c") == (1, 784, 784)
    assert row("pool", "fusion", "concat") == (1, 576 + 768)


def test_the_papers_avg_auc_is_the_mean_of_its_17_categories():
    check = pb.paper_avg_auc_check()
    assert len(check) == 6 and check["agrees within rounding"].all()
    assert check.loc["AMMFM", "mean of the 17 categories"] == pytest.approx(88.13, abs=0.01)


def test_without_scaling_the_softmax_saturates_at_initialisation():
    # AFF's first block: MobileNetV3's 24 channels projected to Swin's 192 on the 28 × 28 grid
    m = pb.attention_logits_at_init(channels=192, clinical_channels=24, side=28, cases=1)
    n = m["n"]
    assert m["scale"] == pytest.approx(1 / np.sqrt(192))
    assert np.median(m["scaled"]) < 2 / n  # rows close to uniform (1/N)
    assert np.median(m["unscaled"]) > 20 / n  # rows concentrated on a few of the 784 positions


def test_with_runs_lowers_the_number_of_runs_and_refuses_nonsense():
    assert pb.with_runs(FULL, 3).paper_b.n_runs == 3 and pb.with_runs(FULL).paper_b.n_runs == 10
    with pytest.raises(pb.MedlibError, match="positive"):
        pb.with_runs(FULL, 0)
