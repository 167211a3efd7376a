"""How many bytes does one training write in checkpoints, every epoch vs on the time cadence?

Issue 9: ``fit`` wrote model + Adam + SWA state after *every* epoch — ~0.3 GB × 64 epochs per
Paper A site, more × 250 epochs per Paper B run, on a Google Drive of 15 GB. Now it writes every
``checkpoint_every_s`` seconds (default 600) and after the last epoch.

What is measured, on a ResNet50-sized model (timm ``resnet50``, random weights, a 4-class head):
the bytes of one real checkpoint (:meth:`medlib.train.TrainingState.save`: model, Adam moments
after one step, optionally the SWA model, RNG states) and the seconds it takes to write. The
number of checkpoints a training writes is then counted by the real cadence
(:class:`medlib.train.CheckpointCadence`) over a clock that advances by an epoch's duration —
no training is run: the epoch durations are inputs (``--epoch-seconds``), the rows show the
range from a fast GPU to a T4.

Run: ``python benches/bench_checkpoint.py [--epochs 64 250] [--epoch-seconds 2 10 60] [--every 600]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from medlib.train import CheckpointCadence, TrainConfig, TrainingState  # noqa: E402
from medlib.train.precision import choose_precision  # noqa: E402


def checkpoint_size(swa: bool, folder: Path) -> tuple[int, float]:
    """Bytes and seconds of one checkpoint of a ResNet50 with Adam state (and SWA model)."""
    torch.manual_seed(0)
    model = timm.create_model("resnet50", pretrained=False, num_classes=4)
    cfg = TrainConfig(lr=1e-5, epochs=64, device="cpu", swa_start=0 if swa else None)
    state = TrainingState.create(model, cfg, choose_precision(torch.device("cpu")))
    for p in model.parameters():  # one Adam step allocates both moments of every parameter
        p.grad = torch.full_like(p, 1e-3)
    state.optimizer.step()
    if state.swa_model is not None:
        state.swa_model.update_parameters(model)
    start = time.perf_counter()
    size = state.save(folder / "state.ckpt")
    return size, time.perf_counter() - start


def checkpoints_written(epochs: int, epoch_seconds: float, every_s: float) -> int:
    """How many checkpoints the cadence writes over ``epochs`` epochs of ``epoch_seconds`` each."""
    now = [0.0]
    cadence = CheckpointCadence(every_s, clock=lambda: now[0])
    written = 0
    for epoch in range(1, epochs + 1):
        now[0] += epoch_seconds
        if cadence.due(epoch, epochs):
            written += 1
            cadence.written()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[64, 250], help="Paper A site: 64; Paper B run: 250")
    parser.add_argument("--epoch-seconds", type=float, nargs="+", default=[2.0, 10.0, 60.0])
    parser.add_argument("--every", type=float, default=600.0, help="checkpoint_every_s (fit's default: 600)")
    args = parser.parse_args()

    print(f"torch {torch.__version__}; timm resnet50 (4 classes), Adam; cadence every {args.every:g} s + the last epoch")
    with tempfile.TemporaryDirectory() as tmp:
        for swa in (False, True):
            size, seconds = checkpoint_size(swa, Path(tmp))
            label = "model + Adam + SWA model" if swa else "model + Adam"
            print(f"\none checkpoint ({label}): {size / 1e6:.1f} MB, written in {seconds:.2f} s")
            print(f"{'epochs':>7} {'s/epoch':>8} {'before: every epoch':>20} {'after: cadence':>15} {'saves':>7} {'ratio':>7}")
            for epochs in args.epochs:
                for epoch_s in args.epoch_seconds:
                    n = checkpoints_written(epochs, epoch_s, args.every)
                    before, after = epochs * size, n * size
                    print(f"{epochs:>7} {epoch_s:>8g} {before / 1e9:>17.2f} GB {after / 1e9:>12.2f} GB "
                          f"{n:>3}/{epochs:<3} {before / after:>6.1f}×")


if __name__ == "__main__":
    main()
