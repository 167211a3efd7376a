"""The shared trainer: learning, class weights, exact resume, SWA, metrics."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from medlib.errors import MedlibError
from medlib.train import (
    TrainConfig,
    class_weights_from_labels,
    classification_metrics,
    evaluate,
    fit,
    make_loader,
    predict,
)
from toy_training import learnable


def mlp(seed=0, dropout=0.2):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs"


class Killed(Exception):
    pass


class DiesAt:
    """A loader that raises at batch ``batch`` of its ``call``-th pass: a kill mid-epoch."""

    def __init__(self, loader, call, batch):
        self.loader, self.call, self.batch, self.calls = loader, call, batch, 0

    def __iter__(self):
        self.calls += 1
        for i, b in enumerate(self.loader):
            if self.calls == self.call and i == self.batch:
                raise Killed
            yield b


CFG = TrainConfig(lr=1e-2, epochs=5, seed=4, scheduler="cosine", swa_start=2, swa_lr=5e-3, log_every=0)


def test_loss_decreases_and_progress_is_printed(capsys):
    model = mlp()
    history = fit(model, make_loader(learnable(), 16, shuffle=True), TrainConfig(lr=1e-2, epochs=8, seed=0),
                  val_loader=make_loader(learnable(48, seed=0), 48, shuffle=False))
    losses = [r["train_loss"] for r in history.records]
    assert losses[-1] < 0.6 * losses[0]
    assert history.records[-1]["train_accuracy"] > 0.8
    assert {"val_accuracy", "val_balanced_accuracy", "val_macro_f1", "val_auroc", "val_loss"} <= set(history.records[-1])
    out = capsys.readouterr().out
    assert "epoch   1/8" in out and "epoch   8/8" in out and "val_acc" in out


def test_class_weights_by_hand():
    # counts [3, 1, 2, 0], N = 6, K = 3 classes present: w_c = 6 / (3 n_c); absent class → 0
    w = class_weights_from_labels([0, 0, 0, 1, 2, 2], 4)
    assert torch.allclose(w, torch.tensor([2 / 3, 2.0, 1.0, 0.0]))
    sk = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=np.array([0, 0, 0, 1, 2, 2]))
    assert np.allclose(w[:3].numpy(), sk)
    with pytest.raises(MedlibError, match=r"\[0, 3\)"):
        class_weights_from_labels([0, 3], 3)


def test_default_loss_is_class_weighted_cross_entropy():
    data = learnable(12)
    weights = class_weights_from_labels(data.tensors[1], 3)
    model = mlp(dropout=0.0)
    manual = copy.deepcopy(model)
    fit(model, [data.tensors], TrainConfig(lr=1e-2, epochs=1, class_weights=weights, log_every=0))
    optimizer = torch.optim.Adam(manual.parameters(), lr=1e-2)
    F.cross_entropy(manual(data.tensors[0]), data.tensors[1], weight=weights).backward()
    optimizer.step()
    for (k, v), w in zip(model.state_dict().items(), manual.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-7), k


def _uninterrupted(tmp_path, loader_factory):
    model = mlp()
    history = fit(model, loader_factory(), CFG, checkpoint_path=tmp_path / "full.pt", checkpoint_every_s=0)
    return model, history


def _shuffled_global():
    return torch.utils.data.DataLoader(learnable(), batch_size=16, shuffle=True)  # order from torch's global RNG


def _shuffled_own_generator():
    return make_loader(learnable(), 16, shuffle=True, seed=123)  # order from the loader's own generator


@pytest.mark.parametrize("loader_factory", [_shuffled_global, _shuffled_own_generator])
def test_kill_after_an_epoch_then_resume_is_bitwise_identical(tmp_path, loader_factory):
    reference, ref_history = _uninterrupted(tmp_path, loader_factory)

    def die_after_epoch_2(epoch, model, history):
        if epoch == 2:
            raise Killed

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Killed):
        fit(mlp(), loader_factory(), CFG, checkpoint_path=ckpt, checkpoint_every_s=0, on_epoch_end=die_after_epoch_2)
    torch.manual_seed(12345)  # a new process: different global RNG state
    resumed = mlp(seed=77)  # and a differently initialised model: the checkpoint replaces it
    history = fit(resumed, loader_factory(), CFG, checkpoint_path=ckpt, resume=True)
    assert history.resumed_from == 3
    assert_same_state(resumed, reference)
    assert_same_state(history.swa_model, ref_history.swa_model)
    assert [r["train_loss"] for r in history.records] == [r["train_loss"] for r in ref_history.records]


def test_kill_in_the_middle_of_an_epoch_then_resume_is_bitwise_identical(tmp_path):
    reference, ref_history = _uninterrupted(tmp_path, _shuffled_global)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Killed):  # dies at batch 3 of epoch 4 (1-based)
        fit(mlp(), DiesAt(_shuffled_global(), call=4, batch=3), CFG, checkpoint_path=ckpt, checkpoint_every_s=0)
    resumed = mlp()
    history = fit(resumed, _shuffled_global(), CFG, checkpoint_path=ckpt, resume=True)
    assert history.resumed_from == 3
    assert_same_state(resumed, reference)
    assert_same_state(history.swa_model, ref_history.swa_model)


def test_resume_of_a_finished_run_and_changed_settings(tmp_path):
    reference, ref_history = _uninterrupted(tmp_path, _shuffled_global)
    again = mlp(seed=5)
    history = fit(again, _shuffled_global(), CFG, checkpoint_path=tmp_path / "full.pt", resume=True)
    assert history.resumed_from == CFG.epochs and len(history.records) == CFG.epochs
    assert_same_state(again, reference)
    assert_same_state(history.swa_model, ref_history.swa_model)
    changed = TrainConfig(**{**CFG.__dict__, "lr": 0.5})
    with pytest.raises(MedlibError, match="lr"):
        fit(mlp(), _shuffled_global(), changed, checkpoint_path=tmp_path / "full.pt", resume=True)


def test_swa_is_the_mean_of_epoch_end_weights():
    snapshots = []

    def keep(epoch, model, history):
        snapshots.append({k: v.detach().clone() for k, v in model.named_parameters()})

    cfg = TrainConfig(lr=1e-2, epochs=4, seed=0, swa_start=1, log_every=0)
    history = fit(mlp(), make_loader(learnable(), 16, shuffle=True), cfg, on_epoch_end=keep)
    averaged = dict(history.swa_model.named_parameters())
    for k, v in averaged.items():
        expected = (snapshots[1][k] + snapshots[2][k] + snapshots[3][k]) / 3  # epochs 1, 2, 3 (0-based)
        assert torch.allclose(v, expected, atol=1e-6), k
    bn = history.swa_model[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # update_bn ran


def test_swa_lr_takes_over_at_swa_start():
    cfg = TrainConfig(lr=1e-2, epochs=5, seed=0, scheduler="cosine", swa_start=3, swa_lr=1e-3, log_every=0)
    history = fit(mlp(), make_loader(learnable(), 32, shuffle=True), cfg)
    lrs = [r["lr"] for r in history.records]
    assert lrs[0] == pytest.approx(1e-2)
    assert lrs[1] == pytest.approx(1e-2 * (1 + math.cos(math.pi / 3)) / 2)
    assert lrs[3] == pytest.approx(1e-3) and lrs[4] == pytest.approx(1e-3)


def test_custom_loss_and_multi_input_model():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 3), nn.Linear(6, 3)

        def forward(self, x1, x2):
            return {"first": self.a(x1), "second": self.b(x2)}

    x, y = learnable().tensors
    batches = [((x[i:i + 16], x[i:i + 16] * 2), y[i:i + 16]) for i in range(0, 96, 16)]
    calls = []

    def loss_fn(out, target):
        calls.append(1)
        return (F.cross_entropy(out["first"], target) + F.cross_entropy(out["second"], target)) / 2

    history = fit(TwoInputs(), batches, TrainConfig(lr=1e-2, epochs=3, log_every=0), loss_fn=loss_fn,
                  val_loader=batches)
    assert len(calls) == 3 * 6 + 3 * 6  # training steps + validation batches
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]
    assert math.isnan(history.records[-1]["train_accuracy"])  # not a single-label output
    assert "val_loss" in history.records[-1] and "val_accuracy" not in history.records[-1]


def test_divergence_is_reported():
    x, y = learnable().tensors
    x = x.clone()
    x[0, 0] = float("nan")
    with pytest.raises(MedlibError, match="diverged"):
        fit(mlp(), [(x, y)], TrainConfig(lr=1e-2, epochs=1, log_every=0))


# --------------------------------------------------------------------------- metrics


def test_metrics_by_hand_with_an_absent_class():
    probs = np.array([
        [0.7, 0.1, 0.1, 0.1],  # y 0, predicted 0
        [0.4, 0.3, 0.2, 0.1],  # y 0, predicted 0
        [0.5, 0.3, 0.1, 0.1],  # y 1, predicted 0
        [0.1, 0.6, 0.2, 0.1],  # y 1, predicted 1
        [0.2, 0.2, 0.5, 0.1],  # y 2, predicted 2; class 3 never occurs
    ])
    labels = np.array([0, 0, 1, 1, 2])
    m = classification_metrics(probs, labels, 4)
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    # F1: class 0 P=2/3 R=1 → 0.8; class 1 P=1 R=1/2 → 2/3; class 2 → 1
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 1) / 3)
    # one-vs-rest AUCs: class 0: 5/6; class 1: 5.5/6 (one tie); class 2: 1 → mean 11/12
    assert m["auroc"] == pytest.approx(11 / 12)


def test_metrics_match_sklearn_when_all_classes_are_present():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 60)
    m = classification_metrics(probs, labels, 4)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx((pred == labels).mean())
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert math.isnan(classification_metrics(probs[:3], np.zeros(3, dtype=int), 4)["auroc"])


def test_predict_and_evaluate_on_a_loader():
    model = mlp(dropout=0.0).eval()
    data = learnable(40)
    loader = make_loader(data, 16, shuffle=False)
    probs, labels = predict(model, loader)
    with torch.no_grad():
        expected = model(data.tensors[0]).softmax(1).numpy()
    assert np.allclose(probs, expected, atol=1e-6)
    assert np.array_equal(labels, data.tensors[1].numpy())
    m = evaluate(model, loader, "cpu", 3)
    assert m["accuracy"] == pytest.approx((expected.argmax(1) == labels).mean()) and m["n"] == 40
