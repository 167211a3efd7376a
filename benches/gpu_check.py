"""GPU check: the full profile's dry run on CUDA, then a training-throughput bench of its configurations.

Runs where a GPU is found in practice — Python 3.12 with torch, torchvision and timm preinstalled,
no internet, no book stack (as on Colab): ``make gpu-check`` runs it with ``PYTHONPATH=.`` (medlib
from the working tree, nothing installed). Three parts:

1. **Dry run on CUDA** — both papers' experiment functions with ``dry_run(FULL)``: the real
   architectures at 224 px, random weights, synthetic data in the real layouts, capped steps.
   This is what catches a model left on the CPU while its batches are on the GPU.
2. **Throughput** of every full-profile configuration (Paper A ResNet50, batch 32; Paper B's
   configurations, batch 24): training images/s in fp32 NCHW and in the chosen precision
   (bfloat16 where supported, else float16) with channels_last, their ratio, and the peak GPU
   memory at the full batch size, which must fit a 16 GB T4.
3. **Epoch overhead**: a real Paper B training epoch through the project's own data path
   (``paper_b.train_config``) against the pure compute of the same steps; the share spent outside
   forward/backward/optimizer (loading, augmentation, validation, logging) — goal ≤ 10 %.

Exit codes: 0 passed (or no CUDA device: says so and checks nothing); 1 a check failed
(dry run error, peak memory over 16 GB); 3 ``--require-cuda`` and no CUDA device.
``--cpu-smoke`` runs the same code on the CPU with tiny models and sizes (tests/test_colab.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import traceback

import torch

T4_BYTES = 16 * 1024**3
OVERHEAD_GOAL = 0.10


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _precision(device, amp: bool):
    """The precision medlib's trainer picks (medlib.train.choose_precision), as (autocast ctx, scaler, label)."""
    from medlib.train import choose_precision

    p = choose_precision(device, amp=amp)
    return p.autocast, p.grad_scaler(), str(p)


# --------------------------------------------------------------------------- part 1: dry run


def dry_run_experiments(profile, device) -> list[str]:
    """Both papers' experiments through the full profile's code paths; returns the failures."""
    from medlib.experiments import paper_a, paper_b

    failures = []
    steps = [
        ("Paper A: Table (retina), sites + full training + merges", lambda: paper_a.run_table("retina", profile)),
        ("Paper A: λ sweep and BN ablation", lambda: _paper_a_analyses(paper_a, profile)),
        ("Paper B: Table 2 (AMMFM vs single modalities)", lambda: paper_b.table2(profile)),
        ("Paper B: Table 3 (attention blocks)", lambda: paper_b.table3(profile)),
    ]
    for name, step in steps:
        t0 = time.perf_counter()
        try:
            step()
            print(f"  ok    {name} ({time.perf_counter() - t0:.1f} s)", flush=True)
        except Exception:  # report every part, then fail
            failures.append(name)
            print(f"  FAIL  {name}\n{traceback.format_exc()}", flush=True)
    return failures


def _paper_a_analyses(paper_a, profile):
    tr = paper_a.train_sites("retina", profile, profile.first_seed)
    paper_a.lambda_sweep(tr)
    paper_a.bn_ablation(tr)


# --------------------------------------------------------------------------- part 2: throughput


@dataclasses.dataclass
class Bench:
    name: str
    build: object  # () -> nn.Module
    batch: object  # (batch_size, device) -> (inputs, targets)
    loss: object  # (output, targets) -> loss
    batch_size: int


def _paper_a_bench(P, size: int, batch_size: int) -> Bench:
    from medlib.models import Classifier, create_backbone

    def build():
        return Classifier(create_backbone(P.paper_a.arch), 4, arch=P.paper_a.arch)

    def batch(n, device):
        return torch.randn(n, 3, size, size, device=device), torch.randint(0, 4, (n,), device=device)

    return Bench(f"A {P.paper_a.arch}", build, batch, torch.nn.functional.cross_entropy, batch_size)


def _paper_b_bench(config, P, size: int, batch_size: int) -> Bench:
    from medlib.ammfm.loss import ammfm_loss
    from medlib.ammfm.tasks import TASKS

    sizes = [len(v) for v in (TASKS.values() if isinstance(TASKS, dict) else [t[1] for t in TASKS])]

    def batch(n, device):
        x = (torch.randn(n, 3, size, size, device=device), torch.randn(n, 3, size, size, device=device))
        y = torch.stack([torch.randint(0, k, (n,), device=device) for k in sizes], dim=1)
        return x, y

    return Bench(f"B {config.name}", lambda: config.build(P.paper_b.backbone_size, False), batch, ammfm_loss,
                 batch_size)


def _to_channels_last(x):
    if isinstance(x, (tuple, list)):
        return type(x)(_to_channels_last(t) for t in x)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def _forward(model, x):
    return model(*x) if isinstance(x, tuple) else model(x)


def compute_seconds_per_step(bench: Bench, device, *, fast: bool, steps: int, warmup: int = 2) -> tuple[float, int]:
    """Seconds per training step (forward, backward, Adam) on batches already on ``device``; peak bytes."""
    torch.manual_seed(0)
    model = bench.build().to(device).train()
    autocast, scaler, _ = _precision(device, amp=fast)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    x, y = bench.batch(bench.batch_size, device)
    if fast:
        x = _to_channels_last(x)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        with autocast():
            loss = bench.loss(_forward(model, x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    _sync(device)
    seconds = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    del model, opt, x, y
    return seconds, peak


def throughput(benches: list[Bench], device, steps: int) -> list[str]:
    failures = []
    _, _, label = _precision(device, amp=True)
    print(f"  {'configuration':<22} {'batch':>5} {'fp32 NCHW img/s':>16} {label + ' CL img/s':>18} "
          f"{'ratio':>6} {'peak memory':>12}", flush=True)
    for b in benches:
        slow, _ = compute_seconds_per_step(b, device, fast=False, steps=steps)
        fast, peak = compute_seconds_per_step(b, device, fast=True, steps=steps)
        fits = device.type != "cuda" or peak < T4_BYTES
        print(f"  {b.name:<22} {b.batch_size:>5} {b.batch_size / slow:>16.1f} {b.batch_size / fast:>18.1f} "
              f"{slow / fast:>5.2f}x {peak / 1024**3:>9.2f} GB{'' if fits else '  > 16 GB: does not fit a T4'}",
              flush=True)
        if not fits:
            failures.append(f"{b.name}: peak memory {peak / 1024**3:.1f} GB")
    print("  (images/s of training steps; peak memory of the chosen precision at the full batch size)")
    return failures


# --------------------------------------------------------------------------- part 3: epoch overhead


def epoch_overhead(P, device, *, batch_size: int, epochs: int = 3) -> float:
    """Share of a real Paper B training epoch spent outside forward/backward/optimizer."""
    from medlib.experiments import paper_b

    config = next(c for c in paper_b.all_configs(P) if not c.single_modal)
    data = paper_b.load_pairs(P, image_size=P.paper_b.image_size)
    n_train = len(data.splits["train"])
    bs = min(batch_size, n_train)
    overrides = {"epochs": epochs, "swa_epochs": 1, "batch_size": bs}
    result = paper_b.train_config(config, P, data=data, overrides=overrides, pretrained=False, verbose=False)
    history = result.history
    epoch_s = float(history["seconds"].iloc[1:].mean())  # the first epoch pays for cuDNN autotuning
    steps = n_train // bs
    bench = _paper_b_bench(config, P, P.paper_b.image_size, bs)
    step_s, _ = compute_seconds_per_step(bench, device, fast=device.type == "cuda", steps=max(steps, 2))
    share = max(0.0, 1.0 - steps * step_s / epoch_s)
    print(f"  {config.name}: {n_train} training cases, batch {bs}: epoch {epoch_s:.2f} s (with validation), "
          f"compute {steps} × {step_s * 1000:.1f} ms = {steps * step_s:.2f} s -> "
          f"{100 * share:.0f}% outside compute (goal ≤ {100 * OVERHEAD_GOAL:.0f}%)", flush=True)
    return share


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="same code on the CPU, tiny models and sizes")
    parser.add_argument("--require-cuda", action="store_true", help="exit 3 instead of 0 without a CUDA device")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per configuration")
    parser.add_argument("--skip-dry-run", action="store_true")
    args = parser.parse_args(argv)

    from medlib.profiles import FULL, SMOKE, dry_run

    if args.cpu_smoke:
        device = torch.device("cpu")
        profile, bench_profile, size, batch_a, batch_b, steps = dry_run(SMOKE), SMOKE, 64, 4, 4, 1
    elif not torch.cuda.is_available():
        print("gpu-check: no CUDA device (torch.cuda.is_available() is False): nothing checked. "
              "Run it on a GPU machine or a Colab GPU runtime; `--cpu-smoke` runs the same code on the CPU.")
        return 3 if args.require_cuda else 0
    else:
        device = torch.device("cuda")
        profile, bench_profile, size, steps = dry_run(FULL), FULL, FULL.paper_b.image_size, args.steps
        batch_a, batch_b = FULL.paper_a.batch_size, FULL.paper_b.batch_size
        torch.backends.cudnn.benchmark = True
    os.environ.setdefault("MEDLIB_HOME", tempfile.mkdtemp(prefix="medlib-gpu-check-"))
    os.environ["MEDLIB_PROFILE"] = profile.name
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke)"
    print(f"gpu-check on {name}: python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"MEDLIB_HOME={os.environ['MEDLIB_HOME']}", flush=True)
    failures: list[str] = []

    if not args.skip_dry_run:
        print(f"\n[1] dry run of the {profile.label} profile's experiments on {device}", flush=True)
        failures += dry_run_experiments(profile, device)

    print(f"\n[2] training throughput and peak memory ({steps} timed steps each)", flush=True)
    from medlib.experiments import paper_b

    benches = [_paper_a_bench(bench_profile, size, batch_a)]
    configs = paper_b.all_configs(bench_profile)
    benches += [_paper_b_bench(c, bench_profile, size, batch_b) for c in (configs[:3] if args.cpu_smoke else configs)]
    failures += throughput(benches, device, steps)

    print("\n[3] share of a training epoch outside forward/backward/optimizer", flush=True)
    try:
        epoch_overhead(profile, device, batch_size=batch_b, epochs=2 if args.cpu_smoke else 3)
    except Exception:
        failures.append("epoch overhead")
        print(traceback.format_exc(), flush=True)

    minutes = (time.perf_counter() - started) / 60
    if failures:
        print(f"\ngpu-check: FAILED ({'; '.join(failures)}) after {minutes:.1f} min")
        return 1
    print(f"\ngpu-check: passed in {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
