"""GPU time of the full profile from its FLOPs, the same way for a T4, an A100 and an H100.

A training image costs three forward passes (forward, and a backward pass of about twice that);
an evaluated image one. The models' forward FLOPs are counted by ``torch.utils.flop_counter`` on
the ``meta`` device (shapes only: no weights, no compute). A GPU's sustained rate is assumed from
ResNet50 mixed-precision training in public benchmarks until ``make gpu-check`` measures one
(its JSON's images/s and model-FLOPs utilisation). README, ``book/running.md`` and the plans
printed before Part A's trainings (:mod:`medlib.experiments.paper_a.plan`) all use these numbers.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["GPU_IMAGES_PER_SECOND", "SIZES", "forward_flops", "gpu_seconds", "evaluations", "paper_b_run_flops", "work",
           "estimate_table"]

# ResNet50 at 224 px, mixed-precision training images/s (NVIDIA DeepLearningExamples' ResNet50 v1.5
# tables, rounded down: a 32-image batch of a small dataset does not reach their 256-image batches)
GPU_IMAGES_PER_SECOND = {"T4": 250.0, "A100": 2300.0, "H100": 4600.0}
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
