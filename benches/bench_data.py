"""How much does decoding once save? (medlib.data.cache + medlib.data.augment)

One run, the same images, the same model (timm ``test_resnet``, forward + backward + SGD
step at ``--size`` px), the same batch size, shuffling and ``num_workers``:

* ``imagefolder``   torchvision ``datasets.ImageFolder``: every epoch PIL decodes each PNG,
                    v2 resizes (shorter side) + centre-crops, then the v2 training
                    augmentation (flips, affine, brightness) runs per sample.
* ``cache+v2``      :func:`medlib.data.cache.cached_images` built once (build time reported
                    on its own line), then every epoch reads the memory-mapped uint8 cache;
                    the same v2 augmentation runs per sample in the Dataset.
* ``cache+batched`` the same cache, augmentation done per batch on the model's device with
                    :func:`medlib.data.augment.gpu_augment` (per-sample parameters).
* ``model only``    the training steps alone on batches already in memory: the floor.

The images are a synthetic retina stand-in (``medlib.data.synth``, ``size="medium"``, 256 px)
re-saved at ``--source-px`` (real fundus photographs are 1-2k px wide) into an ImageFolder
tree. Run: ``python benches/bench_data.py [--images N] [--size S] [--epochs E]``.
Prints per-epoch medians and the speed-up over ``imagefolder`` (goal: >= 3x).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from medlib.data import load_dataset  # noqa: E402
from medlib.data.augment import TensorImageDataset, gpu_augment, normalize, train_transform  # noqa: E402
from medlib.data.cache import cached_images  # noqa: E402
from medlib.data.synth import synthesize  # noqa: E402
from medlib.runtime import select_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_image_folder(work: Path, n_images: int, source_px: int, seed: int) -> Path:
    """Synthesize the retina stand-in and copy ``n_images`` of it (all classes) into an ImageFolder tree."""
    synth_root = synthesize("retina", work / "retina-synth", seed=seed, size="medium")
    ds = load_dataset("retina", synth_root)
    if n_images > len(ds):
        print(f"--images {n_images} > {len(ds)} synthetic images; using {len(ds)}")
        n_images = len(ds)
    # Evenly spaced picks keep every class (the dataset lists classes one after another).
    picks = np.linspace(0, len(ds) - 1, n_images).round().astype(int)
    folder = work / f"imagefolder-{n_images}-{source_px}px"
    if not folder.exists():
        tmp = folder.with_name(folder.name + ".tmp")
        for i in picks:
            src = ds.image_paths[i]
            dst = tmp / ds.classes[ds.labels[i]] / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(src) as img:
                if img.size != (source_px, source_px):
                    img = img.convert("RGB").resize((source_px, source_px), Image.Resampling.BICUBIC)
                img.save(dst, compress_level=6)
        tmp.rename(folder)
    return folder


def train_epoch(model, optimizer, batches, device, prepare) -> tuple[float, int]:
    """One pass over ``batches``; ``prepare(images)`` turns a loaded batch into the model input."""
    model.train()
    _sync(device)
    start = time.perf_counter()
    seen = 0
    for images, labels in batches:
        inputs = prepare(images.to(device, non_blocking=True))
        loss = torch.nn.functional.cross_entropy(model(inputs), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(labels)
    _sync(device)
    return time.perf_counter() - start, seen


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="images in the benchmark (<= 601)")
    parser.add_argument("--size", type=int, default=64, help="training resolution in px")
    parser.add_argument("--source-px", type=int, default=512, help="side of the PNGs on disk")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per pipeline")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader num_workers (all pipelines)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice); 1 is steadier on a busy machine")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the synthetic images and cache here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = select_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="medlib-bench-data-") as tmp:
        work = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        folder = make_image_folder(work, args.images, args.source_px, args.seed)
        print(f"images ready in {time.perf_counter() - t0:.1f} s: {folder}")

        loader_kw = dict(batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                         pin_memory=device.type == "cuda", drop_last=False)
        augment = train_transform()  # identical per-sample augmentation for both v2 pipelines
        imagefolder = datasets.ImageFolder(
            folder, transform=v2.Compose([v2.ToImage(), v2.Resize(args.size, antialias=True),
                                          v2.CenterCrop(args.size), augment]))
        paths = [Path(p) for p, _ in imagefolder.samples]
        labels = np.array(imagefolder.targets)

        shutil.rmtree(work / "cache", ignore_errors=True)  # time a real build, not a hit from a last run
        t0 = time.perf_counter()
        cache = cached_images(paths, args.size, work / "cache", progress=False)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached_images(paths, args.size, work / "cache", progress=False)
        hit_s = time.perf_counter() - t0

        pipelines = {
            "imagefolder": (DataLoader(imagefolder, **loader_kw), lambda x: x),
            "cache+v2": (DataLoader(TensorImageDataset(cache, labels, augment), **loader_kw), lambda x: x),
            "cache+batched": (DataLoader(TensorImageDataset(cache, labels), **loader_kw),
                              lambda x: normalize(gpu_augment(x))),
        }
        in_memory = [(normalize(cache[i : i + args.batch_size].float() / 255), torch.as_tensor(labels[i : i + args.batch_size]))
                     for i in range(0, len(labels), args.batch_size)]
        pipelines["model only"] = (in_memory, lambda x: x)

        model = timm.create_model("test_resnet", num_classes=len(imagefolder.classes), pretrained=False).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        times: dict[str, list[float]] = {name: [] for name in pipelines}
        # Warm-up once per pipeline (allocator, cuDNN, page cache), then interleave the
        # timed epochs so background load on a shared machine hits all pipelines alike.
        for name, (batches, prepare) in pipelines.items():
            train_epoch(model, optimizer, batches, device, prepare)
        for epoch in range(args.epochs):
            for name, (batches, prepare) in pipelines.items():
                seconds, seen = train_epoch(model, optimizer, batches, device, prepare)
                times[name].append(seconds)
                print(f"  epoch {epoch + 1}/{args.epochs} {name:<14} {seconds:7.3f} s")

    n = len(labels)
    base = statistics.median(times["imagefolder"])
    print()
    print(f"device {device}, torch threads {torch.get_num_threads()}, num_workers {args.workers}, "
          f"{n} images of {args.source_px} px -> {args.size} px, batch {args.batch_size}, "
          f"model timm test_resnet, {args.epochs} timed epochs")
    print(f"cache build (decode + resize once, {n} images): {build_s:.2f} s; cache hit (key check + mmap): {hit_s:.3f} s")
    print(f"{'pipeline':<15}{'epoch median s':>16}{'images/s':>11}{'vs imagefolder':>16}")
    result = {"device": str(device), "images": n, "size": args.size, "source_px": args.source_px,
              "workers": args.workers, "cache_build_s": build_s, "cache_hit_s": hit_s, "epochs": {}}
    for name, series in times.items():
        median = statistics.median(series)
        result["epochs"][name] = median
        print(f"{name:<15}{median:16.3f}{n / median:11.0f}{base / median:15.1f}x")
    speedup = base / statistics.median(times["cache+v2"])
    speedup_batched = base / statistics.median(times["cache+batched"])
    saved = base - statistics.median(times["cache+v2"])
    print(f"\ncached pipeline speed-up: {speedup:.1f}x with per-sample v2, {speedup_batched:.1f}x with batched "
          f"augmentation (goal >= 3x)" + (f"; the cache build pays for itself after {build_s / saved:.2f} epochs"
                                          if saved > 0 else ""))
    result["speedup_v2"], result["speedup_batched"] = speedup, speedup_batched
    return result


if __name__ == "__main__":
    main()
