"""What is in a dataset folder (``medlib data inspect``, shown before every experiment): items, classes, splits."""

from __future__ import annotations

import os

from medlib.data import load_dataset

__all__ = ["inspect_dataset", "summarize", "format_inspection"]


def summarize(ds) -> dict:
    """``{"dataset", "n_items", "tasks": {task: {class: count}}, "splits": {split: count}}`` of a loaded dataset."""
    return {"dataset": ds.name, "n_items": int(len(ds)), "tasks": ds.counts(),
            "splits": {split: int(len(idx)) for split, idx in ds.splits.items()}}


def inspect_dataset(name: str, root: str | os.PathLike) -> dict:
    """:func:`summarize` of dataset ``name`` loaded from ``root``."""
    return summarize(load_dataset(name, root))


def format_inspection(info: dict) -> str:
    """A plain-text table of :func:`inspect_dataset`'s result (one block per task)."""
    total = max(info["n_items"], 1)
    lines = [f"dataset: {info['dataset']}    items: {info['n_items']}",
             "splits:  " + (", ".join(f"{k} {v}" for k, v in info["splits"].items()) or "none (no official split)")]
    for task, counts in info["tasks"].items():
        width = max([len(c) for c in counts] + [5])
        lines += ["", f"task {task}", f"  {'class':<{width}}  {'count':>6}  {'share':>6}"]
        lines += [f"  {cls:<{width}}  {n:>6}  {100 * n / total:>5.1f}%" for cls, n in counts.items()]
    return "\n".join(lines)
