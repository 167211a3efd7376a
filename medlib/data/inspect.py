"""What is in a dataset folder: items, class counts per task, official splits.

``inspect_dataset`` is what ``medlib data inspect NAME --root DIR`` prints; the book shows
it before every experiment so a reader sees the class imbalance the metrics must live with.
"""

from __future__ import annotations

import os

from medlib.data import load_dataset

__all__ = ["inspect_dataset", "summarize", "format_inspection"]


def summarize(ds) -> dict:
    """The inspection dict of an already loaded dataset (see :func:`inspect_dataset`)."""
    return {
        "dataset": ds.name,
        "n_items": int(len(ds)),
        "tasks": ds.counts(),
        "splits": {split: int(len(idx)) for split, idx in ds.splits.items()},
    }


def inspect_dataset(name: str, root: str | os.PathLike) -> dict:
    """Load ``name`` from ``root`` and return exactly::

        {"dataset": NAME, "n_items": int,
         "tasks": {task: {class: count}},   # single-label datasets: one task, "label"
         "splits": {split: count}}          # {} when the dataset has no official split
    """
    return summarize(load_dataset(name, root))


def format_inspection(info: dict) -> str:
    """A plain-text table of :func:`inspect_dataset`'s result (one block per task)."""
    total = max(info["n_items"], 1)
    lines = [f"dataset: {info['dataset']}    items: {info['n_items']}"]
    if info["splits"]:
        lines.append("splits:  " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()))
    else:
        lines.append("splits:  none (no official split)")
    for task, counts in info["tasks"].items():
        width = max([len(c) for c in counts] + [5])
        lines.append("")
        lines.append(f"task {task}")
        lines.append(f"  {'class':<{width}}  {'count':>6}  {'share':>6}")
        for cls, n in counts.items():
            lines.append(f"  {cls:<{width}}  {n:>6}  {100 * n / total:>5.1f}%")
    return "\n".join(lines)
