"""GPU time of the full profile from its FLOPs, the same way for a T4, an A100 and an H100.

A trained image costs three forward passes (a backward pass is about two), an evaluated one one.
Forward FLOPs are counted by ``torch.utils.flop_counter`` on the ``meta`` device (no weights, no
compute); a GPU's sustained rate is assumed from public ResNet50 mixed-precision benchmarks until
``make gpu-check`` measures one. README, ``book/running.md`` and the planner (:mod:`medlib.runs.plan`)
use these numbers.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["GPU_IMAGES_PER_SECOND", "CPU_IMAGES_PER_SECOND", "SIZES", "forward_flops", "gpu_seconds", "evaluations",
           "paper_a_seconds", "paper_b_seconds", "paper_b_run_flops", "work", "estimate_table"]

# ResNet50 at 224 px, mixed-precision training images/s (NVIDIA DeepLearningExamples' ResNet50 v1.5
# tables, rounded down: a 32-image batch of a small dataset does not reach their 256-image batches)
GPU_IMAGES_PER_SECOND = {"T4": 250.0, "A100": 2300.0, "H100": 4600.0}
# smoke's (training, evaluation) images per second before anything is measured: test_resnet at 48 px on one
# core of this project's 2-core CPU machines (the smoke book's 120-image Retina site: 8 epochs and its test set in 4 s)
CPU_IMAGES_PER_SECOND = {"smoke": (250.0, 800.0)}
T4 = "estimated (T4, from FLOPs)"
# the full profile's data: Paper A's datasets (images) and derm7pt's splits (cases)
SIZES = {"retina": 601, "bladder-tissue": 1754, "pad-ufes-20": 2298, "derm7pt/train": 413, "derm7pt/valid": 203,
         "derm7pt/test": 395}


def _flops(build, n_inputs: int, size: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build().eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(*[torch.empty(1, 3, size, size) for _ in range(n_inputs)])
    return counter.get_total_flops()


@functools.lru_cache(maxsize=None)
def forward_flops(kind: str, name: str, size: int = 224) -> int:
    """Forward FLOPs of one image (a pair for Paper B): ``kind`` "A" (a timm arch) or "B" (a config name)."""
    if kind == "A":
        from medlib.models import Classifier, create_backbone

        return _flops(lambda: Classifier(create_backbone(name), 4, arch=name), 1, size)
    from medlib.experiments.paper_b.configs import all_configs
    from medlib.profiles import FULL

    config = next(c for c in all_configs(FULL) if c.name == name)
    return _flops(lambda: config.build("full", False), 2, size)


def gpu_seconds(flops: float, gpu: str) -> float:
    """Seconds ``gpu`` needs for ``flops`` of model work, at ResNet50's sustained training rate."""
    rate = GPU_IMAGES_PER_SECOND[gpu] * 3 * forward_flops("A", "resnet50")
    return flops / rate


def evaluations(epochs: int, every: int) -> int:
    """Evaluations inside a training of ``epochs`` epochs that evaluates every ``every`` and after the last."""
    return len(set(range(every, epochs + 1, every)) | {epochs})


def paper_a_seconds(P, n_train: float, n_test: float, epochs: int | None = None) -> tuple[float, str]:
    """A Paper A training's time before any is measured, and its basis: smoke on this CPU, else a T4."""
    A = P.paper_a
    epochs = A.epochs if epochs is None else epochs
    if P.max_steps is not None:  # a dry run: capped batches per epoch and per evaluated split
        n_train, n_test = (min(n, P.max_steps * A.batch_size) for n in (n_train, n_test))
    evaluated = evaluations(epochs, A.eval_every) * n_test
    if P.name in CPU_IMAGES_PER_SECOND:
        train_rate, eval_rate = CPU_IMAGES_PER_SECOND[P.name]
        return epochs * n_train / train_rate + evaluated / eval_rate, "estimated (CPU)"
    return gpu_seconds(forward_flops("A", A.arch, A.image_size) * (3 * epochs * n_train + evaluated), "T4"), T4


def paper_b_seconds(P, config) -> tuple[float | None, str]:
    """A Paper B run's time before any is measured: the full profile's FLOPs on a T4; unknown elsewhere."""
    if P.name == "full" and P.max_steps is None:
        return gpu_seconds(paper_b_run_flops(config, P.paper_b), "T4"), T4
    return None, "unknown yet"


def paper_b_run_flops(config, B) -> float:
    """Model FLOPs of one Paper B run of ``config`` with the settings ``B`` on derm7pt's full splits."""
    f = forward_flops("B", config.name, B.image_size)
    train = SIZES["derm7pt/train"] * B.epochs * 3
    evaluated = SIZES["derm7pt/valid"] * evaluations(B.epochs, B.eval_every)
    predicted = (B.tta_views + 1) * (SIZES["derm7pt/valid"] + SIZES["derm7pt/test"])  # TTA views + last model
    return (train + evaluated + predicted) * f


def work(profile=None) -> dict[str, float]:
    """Model FLOPs of the full profile's pieces of work (the rows of :func:`estimate_table`)."""
    from medlib.experiments.paper_b.configs import all_configs
    from medlib.profiles import FULL

    P = profile or FULL
    A, B = P.paper_a, P.paper_b
    resnet = forward_flops("A", A.arch, A.image_size)
    per_dataset = {}
    for name in A.datasets:
        n = SIZES[name]
        test, train = n * A.test_fraction, n * (1 - A.test_fraction)
        # four sites and the full training see the training images twice per epoch; each evaluates the test set
        trained = 2 * train * A.epochs * 3 + 5 * test * evaluations(A.epochs, A.eval_every)
        per_dataset[name] = trained * resnet * len(P.seeds)

    def paper_b_run(config) -> float:
        return paper_b_run_flops(config, B) * B.n_runs

    from medlib.experiments.beyond import site_epochs

    # Beyond the paper: every site-epoch of its federations and other partitions, on a site's share of the images
    beyond = sum(site_epochs(P) * len(P.seeds) * SIZES[name] * (1 - A.test_fraction) / A.n_sites * 3 * resnet
                 for name in A.datasets)
    configs = all_configs(P)
    ammfm = next(c for c in configs if not c.single_modal)
    return {
        "Paper A, one dataset's table (4 sites + full training, 3 seeds), largest dataset": max(per_dataset.values()),
        "Paper A, all three datasets' tables": sum(per_dataset.values()),
        f"Paper B, one configuration ({ammfm.name}) × {B.n_runs} runs": paper_b_run(ammfm),
        f"Paper B, all {len(configs)} configurations": sum(paper_b_run(c) for c in configs),
        "Beyond the paper, all partitions and federations (three datasets)": beyond,
    }


# the rows that add up to the whole book (the others are parts of them)
WHOLE_BOOK = ("Paper A, all", "Paper B, all", "Beyond the paper")


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    return f"{hours:.1f} h" if hours >= 1 else f"{math.ceil(seconds / 60)} min"


def estimate_table(profile=None) -> str:
    """The Markdown table of README and ``book/running.md``: each piece of work on each GPU."""
    rows = work(profile)
    gpus = list(GPU_IMAGES_PER_SECOND)
    lines = ["| work | " + " | ".join(gpus) + " |", "|---|" + "---|" * len(gpus)]
    for name, flops in rows.items():
        lines.append(f"| {name} | " + " | ".join(_duration(gpu_seconds(flops, g)) for g in gpus) + " |")
    book = sum(v for k, v in rows.items() if k.startswith(WHOLE_BOOK))
    lines.append("| the whole book | " + " | ".join(_duration(gpu_seconds(book, g)) for g in gpus) + " |")
    return "\n".join(lines)
