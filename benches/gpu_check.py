"""GPU check: the full profile's dry run on CUDA, the training step's throughput, and real epochs' overhead.

Runs where a GPU is found in practice — Python with torch, torchvision and timm, no internet, no
book stack (as on Colab): ``make gpu-check`` runs it with ``PYTHONPATH=.`` (medlib from the
working tree, nothing installed). medlib also imports numpy, pandas, scikit-learn, scipy,
safetensors, PyYAML and Pillow, all on a stock Colab image; a missing one is named (exit 2).
Three parts:

1. **Dry run on CUDA** — both papers' experiment functions with ``dry_run(FULL)``: the real
   architectures at 224 px, random weights, synthetic data in the real layouts, capped steps.
   This is what catches a model left on the CPU while its batches are on the GPU.
2. **Throughput** of every full-profile configuration (Paper A ResNet50, batch 32; Paper B's
   configurations, batch 24): the training step as training runs it (precision, channels-last,
   ``cudnn.benchmark``) but eager, images/s, model-FLOPs utilisation of the GPU's dense bf16 peak,
   and peak memory *with the CUDA context*, held against a T4's 15 GiB.
3. **Epoch overhead**: real epochs of a Paper A and a Paper B configuration through ``fit`` at the
   full profile's step count (a full training's 481 images; derm7pt's 413 training cases) and
   validation size (120; 203 cases), validation at the profile's cadence, against the same
   steps' pure compute (compiled where training compiles). The share outside forward/backward/
   optimizer must stay under ``--overhead-goal`` (default 0.10; the CPU smoke judges it only
   when the option is given). Both sides take the best of their repeats. On CUDA the timed epochs run
   under ``torch.cuda.set_sync_debug_mode("warn")`` and every host sync they make is listed.

It also prints ``syncs per step CONFIG: N``: host reads counted over an epoch of 100 steps
(:mod:`medlib.train.host_sync`). The numbers go to ``--json`` (default ``gpu_check.json``).
Exit codes: 0 passed (or no CUDA device: says so and checks nothing); 1 a check failed (dry run
error, memory over 15 GiB, overhead over the goal); 2 a module missing; 3 ``--require-cuda`` and
no CUDA device. ``--cpu-smoke`` runs the same code on the CPU with tiny models and sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
import warnings

import torch

T4_BYTES = 15 * 1024**3  # what a T4 exposes to a process (its 16 GB less the driver's share)
# dense bfloat16 (float16 on a T4) tensor-core peaks, FLOP/s, from the vendors' data sheets
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "T4": 65e12}
NEEDS = ("numpy", "pandas", "sklearn", "scipy", "safetensors", "yaml", "PIL", "torchvision", "timm")
SYNC_STEPS = 100


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_flops(device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def context_bytes(device) -> int:
    """Device memory the process holds beyond torch's allocator: the CUDA context (0 on a CPU)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    return total - free - torch.cuda.memory_reserved(device)


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


# --------------------------------------------------------------------------- the configurations


@dataclasses.dataclass
class Bench:
    name: str
    build: object  # () -> nn.Module
    loaders: object  # (n_train, n_val, batch_size, device) -> (train loader, val loader)
    to_device: object  # training batch -> (inputs, targets) on the device
    val_to_device: object  # evaluation path
    loss: object  # (output, targets) -> loss
    batch_size: int
    size: int
    eval_every: int


def paper_a_bench(P, size: int, batch_size: int) -> Bench:
    from medlib.experiments.paper_a.batches import DeviceBatches
    from medlib.models import Classifier, create_backbone
    from medlib.train.loop import weighted_cross_entropy

    def build():
        return Classifier(create_backbone(P.paper_a.arch), 4, arch=P.paper_a.arch)

    def loaders(n_train, n_val, bs, device):
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n_train + n_val, 3, size, size), dtype=torch.uint8, generator=g).to(device)
        labels = torch.randint(0, 4, (n_train + n_val,), generator=g).to(device)
        train = DeviceBatches(images, labels, range(n_train), bs, train=True, seed=0, device=device)
        val = DeviceBatches(images, labels, range(n_train, n_train + n_val), bs, train=False, seed=0, device=device)
        return train, val

    def same(batch, device):
        return batch

    return Bench(f"A {P.paper_a.arch}", build, loaders, same, same, weighted_cross_entropy(None, None), batch_size,
                 size, P.paper_a.eval_every)


def paper_b_bench(config, P, size: int, batch_size: int) -> Bench:
    import numpy as np

    from medlib.ammfm.loss import ammfm_loss
    from medlib.ammfm.tasks import NUM_CLASSES
    from medlib.experiments.paper_b.runs import PairBatches, PairData, _eval_batch, _train_batch

    def loaders(n_train, n_val, bs, device):
        n = n_train + n_val
        g = torch.Generator().manual_seed(0)
        pixels = [torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g) for _ in range(2)]
        labels = np.stack([torch.randint(0, k, (n,), generator=g).numpy() for k in NUM_CLASSES], 1)
        splits = {"train": np.arange(n_train), "valid": np.arange(n_train, n)}
        data = PairData(None, pixels[0], pixels[1], labels, splits, "synthetic", "gpu-check")
        return (PairBatches(data, "train", bs, shuffle=True, seed=0, device=device, drop_last=True),
                PairBatches(data, "valid", bs, shuffle=False, seed=0, device=device))

    return Bench(f"B {config.name}", lambda: config.build(P.paper_b.backbone_size, False), loaders, _train_batch,
                 _eval_batch, ammfm_loss, batch_size, size, P.paper_b.eval_every)


def _config(device, **kw):
    from medlib.train import TrainConfig

    return TrainConfig(lr=1e-5, device=device, log_every=0, seed=0, **kw)


def _state(bench: Bench, device):
    from medlib.train import TrainingState, choose_precision

    cfg = _config(device, epochs=1)
    precision = choose_precision(device)
    model = bench.build().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return TrainingState.create(model, cfg, precision), precision


# --------------------------------------------------------------------------- part 2: throughput


def step_seconds(bench: Bench, device, *, steps: int, compile_choice: str = "off",
                 warmup: int = 3) -> tuple[float, int]:
    """Seconds per training step (forward, backward, Adam) on one batch already on ``device``; peak bytes.

    The step of :func:`medlib.train.train_one_epoch` (same precision, scaler, skip rule) without
    a loader: its pure compute.
    """
    from medlib.train.batches import forward
    from medlib.train.loop import _guarded_step, compiled_for_training, tune_for

    tune_for(device)
    torch.manual_seed(0)
    state, precision = _state(bench, device)
    net = compiled_for_training(state.model, device, compile_choice)
    train, _ = bench.loaders(bench.batch_size, 1, bench.batch_size, device)
    x, y = bench.to_device(next(iter(train)), device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    def run(n):
        for _ in range(n):
            with precision.autocast():
                loss = bench.loss(forward(net, x), y)
            _guarded_step(state.optimizer, state.scaler, loss)
        _sync(device)

    run(warmup)
    blocks = []
    for _ in range(3):  # the best of three: another process's work on the machine only ever adds time
        t0 = time.perf_counter()
        run(steps)
        blocks.append((time.perf_counter() - t0) / steps)
    seconds = min(blocks)
    peak = torch.cuda.max_memory_reserved(device) + context_bytes(device) if device.type == "cuda" else 0
    del state, net, x, y
    return seconds, peak


def throughput(benches: list[Bench], device, steps: int) -> tuple[list[dict], list[str]]:
    from medlib.estimates import forward_flops

    failures, rows = [], []
    peak = peak_flops(device)
    print(f"  {'configuration':<22} {'batch':>5} {'img/s':>8} {'MFU':>6} {'peak memory':>12}", flush=True)
    for b in benches:
        seconds, memory = step_seconds(b, device, steps=steps)
        rate = b.batch_size / seconds
        # the FLOPs medlib.estimates counts (full-size models; meta device): a training image is
        # forward + backward, three forwards' worth
        kind, name = b.name.split(" ", 1)
        flops = 3 * forward_flops(kind, name, b.size) if peak else None
        mfu = rate * flops / peak if peak else None
        fits = device.type != "cuda" or memory <= T4_BYTES
        rows.append({"configuration": b.name, "batch": b.batch_size, "images_per_s": rate,
                     "train_flops_per_image": flops, "mfu": mfu, "peak_memory_bytes": memory, "fits_t4": fits})
        print(f"  {b.name:<22} {b.batch_size:>5} {rate:>8.1f} {'' if mfu is None else f'{100 * mfu:.0f}%':>6} "
              f"{memory / 1024**3:>9.2f} GiB{'' if fits else '  > 15 GiB: does not fit a T4'}", flush=True)
        if not fits:
            failures.append(f"{b.name}: peak memory {memory / 1024**3:.1f} GiB")
    print("  (images/s of eager training steps; MFU: model FLOPs per second over the GPU's dense bf16 peak;"
          " peak memory with the CUDA context)", flush=True)
    return rows, failures


# --------------------------------------------------------------------------- syncs per step


def syncs(bench: Bench, device) -> float:
    from medlib.train.host_sync import syncs_per_step

    train, _ = bench.loaders(SYNC_STEPS * 2, 1, 2, device)
    return syncs_per_step(bench.build(), train, bench.loss, to_device=bench.to_device, cfg=_config(device, epochs=2))


# --------------------------------------------------------------------------- part 3: epoch overhead


def epoch_overhead(bench: Bench, device, *, n_train: int, n_val: int, epochs: int = 3) -> dict:
    """Share of a real epoch (validation at the profile's cadence) outside forward/backward/optimizer."""
    from medlib.train import fit

    train, val = bench.loaders(n_train, n_val, bench.batch_size, device)

    def epoch_seconds(**kw) -> float:
        torch.manual_seed(0)
        history = fit(bench.build(), train, _config(device, epochs=epochs, eval_every=1), loss_fn=bench.loss,
                      batch_to_device=bench.to_device, checkpoint_path=None, **kw)
        # epoch 1 compiles and autotunes; the best of the others, as for the compute
        return min(r["seconds"] for r in history.records[1:])

    train_s = epoch_seconds()
    reported = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with_val_s = epoch_seconds(val_loader=val, val_batch_to_device=bench.val_to_device)
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
        reported = sorted({str(w.message).splitlines()[0] for w in caught if "sync" in str(w.message).lower()})
    val_s = max(with_val_s - train_s, 0.0)
    epoch_s = train_s + val_s / bench.eval_every
    steps = len(train)
    step_s, _ = step_seconds(bench, device, steps=max(steps, 2), compile_choice="auto")
    share = 1.0 - steps * step_s / epoch_s
    print(f"  {bench.name}: {n_train} training images, batch {bench.batch_size}: epoch {train_s:.2f} s + validation of "
          f"{n_val} {val_s:.2f} s / {bench.eval_every}, compute {steps} × {step_s * 1000:.1f} ms = "
          f"{steps * step_s:.2f} s -> {100 * share:.1f}% outside compute", flush=True)
    for message in reported:
        print(f"    host sync: {message}", flush=True)
    return {"configuration": bench.name, "train_images": n_train, "val_images": n_val, "steps": steps,
            "epoch_s": train_s, "validation_s": val_s, "eval_every": bench.eval_every, "step_s": step_s,
            "overhead_share": share, "images_per_s": n_train / epoch_s, "syncs_reported": reported}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="same code on the CPU, tiny models and sizes")
    parser.add_argument("--require-cuda", action="store_true", help="exit 3 instead of 0 without a CUDA device")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per configuration")
    parser.add_argument("--skip-dry-run", action="store_true")
    parser.add_argument("--overhead-goal", type=float, default=None,
                        help="largest share of an epoch outside compute (default 0.10 on CUDA; the CPU smoke, whose "
                             "tiny models say nothing of a GPU, judges it only when given)")
    parser.add_argument("--json", default="gpu_check.json", help="where the numbers are written")
    args = parser.parse_args(argv)
    goal = args.overhead_goal if args.overhead_goal is not None or args.cpu_smoke else 0.10
    for name in NEEDS:
        try:
            importlib.import_module(name)
        except ImportError:
            print(f"gpu-check: needs the Python module {name!r} (on a stock Colab image; pip install it)")
            return 2

    from medlib.experiments.paper_b.configs import all_configs
    from medlib.io import atomic_write_text
    from medlib.profiles import FULL, SMOKE, dry_run

    # full-profile sizes of part 3: a Paper A full training (80 % of Retina's 601 images) and its
    # test split; derm7pt's training and validation splits
    sizes = {"A": (481, 120), "B": (413, 203)}
    if args.cpu_smoke:
        device = torch.device("cpu")
        profile, bench_profile, size, batch_a, batch_b, steps = dry_run(SMOKE), SMOKE, 32, 4, 4, 1
    elif not torch.cuda.is_available():
        print("gpu-check: no CUDA device (torch.cuda.is_available() is False): nothing checked. "
              "Run it on a GPU machine or a Colab GPU runtime; `--cpu-smoke` runs the same code on the CPU.")
        return 3 if args.require_cuda else 0
    else:
        device = torch.device("cuda")
        profile, bench_profile, size, steps = dry_run(FULL), FULL, FULL.paper_b.image_size, args.steps
        batch_a, batch_b = FULL.paper_a.batch_size, FULL.paper_b.batch_size
    os.environ.setdefault("MEDLIB_HOME", tempfile.mkdtemp(prefix="medlib-gpu-check-"))
    os.environ["MEDLIB_PROFILE"] = profile.name
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke)"
    print(f"gpu-check on {name}: python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"MEDLIB_HOME={os.environ['MEDLIB_HOME']}", flush=True)
    report = {"device": name, "torch": torch.__version__, "profile": bench_profile.name,
              "overhead_goal": goal, "peak_flops": peak_flops(device)}
    failures: list[str] = []

    if not args.skip_dry_run:
        print(f"\n[1] dry run of the {profile.label} profile's experiments on {device}", flush=True)
        failures += dry_run_experiments(profile, device)

    configs = all_configs(bench_profile)
    fusion = next(c for c in configs if not c.single_modal)
    bench_a = paper_a_bench(bench_profile, size, batch_a)
    benches = [bench_a] + [paper_b_bench(c, bench_profile, size, batch_b)
                           for c in (configs[:3] if args.cpu_smoke else configs)]
    bench_b = next(b for b in benches if b.name == f"B {fusion.name}")

    print(f"\n[2] training throughput and peak memory ({steps} timed steps each)", flush=True)
    report["throughput"], failed = throughput(benches, device, steps)
    failures += failed

    print(f"\nhost reads per training step (an epoch of {SYNC_STEPS} steps)", flush=True)
    report["syncs_per_step"] = {}
    for bench in (bench_a, bench_b):
        small = dataclasses.replace(bench, batch_size=2)
        report["syncs_per_step"][bench.name] = rate = syncs(small, device)
        print(f"syncs per step {bench.name}: {rate:.3f}", flush=True)

    print("\n[3] share of a training epoch outside forward/backward/optimizer"
          + (f" (goal ≤ {100 * goal:.0f}%)" if goal is not None else " (not judged in the CPU smoke)"), flush=True)
    report["overhead"] = []
    for bench, key, full_batch in ((bench_a, "A", FULL.paper_a.batch_size), (bench_b, "B", FULL.paper_b.batch_size)):
        # the full profile's step counts; in the CPU smoke, at its smaller batches
        n_train, n_val = (round(n * bench.batch_size / full_batch) for n in sizes[key])
        try:
            row = epoch_overhead(bench, device, n_train=n_train, n_val=n_val, epochs=2 if args.cpu_smoke else 3)
        except Exception:
            failures.append(f"epoch overhead {bench.name}")
            print(traceback.format_exc(), flush=True)
            continue
        report["overhead"].append(row)
        if goal is not None and row["overhead_share"] > goal:
            failures.append(f"{bench.name}: {100 * row['overhead_share']:.1f}% outside compute > {100 * goal:.0f}%")

    minutes = (time.perf_counter() - started) / 60
    report.update({"failures": failures, "minutes": minutes})
    atomic_write_text(args.json, json.dumps(report, indent=1, default=str) + "\n")
    print(f"\nnumbers written to {args.json}")
    if failures:
        print(f"gpu-check: FAILED ({'; '.join(failures)}) after {minutes:.1f} min")
        return 1
    print(f"gpu-check: passed in {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
