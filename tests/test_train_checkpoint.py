"""Checkpoint cadence, what a resume says, and the max_steps cap of dry runs."""

import torch
import torch.nn.functional as F
from torch import nn
from toy_training import learnable

from medlib.train import CheckpointCadence, TrainConfig, evaluate, fit, make_loader, predict


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


CFG = TrainConfig(lr=1e-2, epochs=5, seed=1, swa_start=3, device="cpu", log_every=0)


def test_time_cadence_by_hand():
    now = [0.0]
    cadence = CheckpointCadence(10.0, clock=lambda: now[0])
    written = []
    for epoch in range(1, 12):  # 3 s per epoch, 11 epochs
        now[0] += 3.0
        if cadence.due(epoch, 11):
            written.append(epoch)
            cadence.written()
    # 12 s ≥ 10 after epoch 4, again 12 s later after epoch 8, and the last epoch always
    assert written == [4, 8, 11]


def test_every_epoch_or_only_at_the_end(tmp_path):
    loader = lambda: make_loader(learnable(), 32, shuffle=True, seed=3)  # noqa: E731
    sizes = []  # on_epoch_end runs after the epoch's checkpoint
    each = fit(mlp(), loader(), CFG, checkpoint_path=tmp_path / "each.pt", checkpoint_every_s=0,
               on_epoch_end=lambda *_: sizes.append((tmp_path / "each.pt").stat().st_size))
    assert each.checkpoints_written == 5 and each.checkpoint_bytes == sum(sizes) and len(set(sizes)) > 1
    default = fit(mlp(), loader(), CFG, checkpoint_path=tmp_path / "end.pt")  # every 10 minutes
    assert default.checkpoints_written == 1 and default.checkpoint_bytes == (tmp_path / "end.pt").stat().st_size
    assert torch.load(tmp_path / "end.pt", weights_only=True)["epoch"] == 5


def test_a_resume_says_where_it_starts(tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    loud = TrainConfig(**{**CFG.__dict__, "log_every": 1})
    fit(mlp(), make_loader(learnable(), 32, shuffle=True), loud, checkpoint_path=ckpt, resume=True)
    assert f"no checkpoint at {ckpt}: training from scratch" in capsys.readouterr().out

    def stop_after_epoch_2(epoch, model, history):
        if epoch == 1:
            raise KeyboardInterrupt

    ckpt.unlink()
    try:
        fit(mlp(), make_loader(learnable(), 32, shuffle=True), CFG, checkpoint_path=ckpt, checkpoint_every_s=0,
            on_epoch_end=stop_after_epoch_2)
    except KeyboardInterrupt:
        pass
    history = fit(mlp(), make_loader(learnable(), 32, shuffle=True), CFG, checkpoint_path=ckpt, resume=True)
    out = capsys.readouterr().out
    assert f"resuming from checkpoint {ckpt} after epoch 2/5 (3 left)" in out  # said even with log_every=0
    assert history.resumed_from == 2 and history.checkpoint == ckpt and len(history.records) == 5


def test_a_checkpoint_resumes_only_under_its_own_binding(tmp_path, capsys):
    import pytest

    from medlib.errors import MedlibError

    ckpt = tmp_path / "site.pt"
    cfg = TrainConfig(lr=1e-2, epochs=1, seed=1, device="cpu", log_every=0)  # the same settings throughout
    fit(mlp(), make_loader(learnable(), 32, shuffle=True), cfg, checkpoint_path=ckpt, checkpoint_every_s=0,
        binding={"site": 1, "theta_pre": "aa"})
    saved = ckpt.read_bytes()
    for other, named in (({"site": 3, "theta_pre": "aa"}, "site"), ({"site": 1, "theta_pre": "bb"}, "theta_pre")):
        with pytest.raises(MedlibError, match=f"{ckpt} belongs to another run \\(its {named} differ"):
            fit(mlp(), make_loader(learnable(), 32, shuffle=True), cfg, checkpoint_path=ckpt, resume=True, binding=other)
    assert ckpt.read_bytes() == saved  # refused before anything is written
    history = fit(mlp(), make_loader(learnable(), 32, shuffle=True), cfg, checkpoint_path=ckpt, resume=True,
                  binding={"site": 1, "theta_pre": "aa"})
    assert history.resumed_from == 1


def test_max_steps_caps_epochs_validation_swa_and_prediction():
    calls = []

    def loss_fn(out, y):
        calls.append(len(y))
        return F.cross_entropy(out, y)

    loader = make_loader(learnable(), 16, shuffle=True)  # six batches
    cfg = TrainConfig(**{**CFG.__dict__, "max_steps": 2})
    model = mlp()
    seen_by_bn = []
    model[1].register_forward_pre_hook(lambda m, a: seen_by_bn.append(len(a[0])))
    history = fit(model, loader, cfg, loss_fn=loss_fn, val_loader=make_loader(learnable(48), 16, shuffle=False))
    # per epoch: two training steps and two validation batches
    assert calls == [16] * (5 * 4)
    # the SWA copy (AveragedModel deep-copies the hook) recomputes BN on two batches, not six
    assert len(seen_by_bn) == 5 * 4 + 2
    assert history.swa_model is not None
    probs, labels = predict(model, make_loader(learnable(40), 16, shuffle=False), max_steps=2)
    assert probs.shape == (32, 3) and labels.shape == (32,)
    assert evaluate(model, make_loader(learnable(40), 16, shuffle=False), "cpu", 3, max_steps=1)["n"] == 16
