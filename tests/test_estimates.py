"""GPU time estimates: from FLOPs, the same way for every GPU, and what README and the book show."""

import re
from pathlib import Path

import pytest

from medlib import estimates
from medlib.estimates import GPU_IMAGES_PER_SECOND, estimate_table, evaluations, gpu_seconds

REPO = Path(__file__).resolve().parents[1]


def test_every_gpu_is_timed_the_same_way():
    """Seconds scale with FLOPs and inversely with the GPU's assumed ResNet50 rate, nothing else."""
    flops = 1e15
    t4, a100 = gpu_seconds(flops, "T4"), gpu_seconds(flops, "A100")
    assert t4 / a100 == pytest.approx(GPU_IMAGES_PER_SECOND["A100"] / GPU_IMAGES_PER_SECOND["T4"])
    assert gpu_seconds(2 * flops, "H100") == pytest.approx(2 * gpu_seconds(flops, "H100"))
    assert evaluations(64, 16) == 4 and evaluations(250, 10) == 25 and evaluations(7, 3) == 3 and evaluations(2, 1) == 2


def test_the_table_follows_the_rates(monkeypatch):
    """Planted rates: twice the T4's rate halves every T4 time in the table."""
    monkeypatch.setattr(estimates, "work", lambda profile=None: {"Paper A, all": 3600 * 2 * 250 * 3 * 8.18e9,
                                                                  "Paper B, all": 0.0})
    monkeypatch.setattr(estimates, "forward_flops", lambda kind, name, size=224: 8.18e9)
    monkeypatch.setattr(estimates, "GPU_IMAGES_PER_SECOND", {"T4": 250.0})
    assert "| Paper A, all | 2.0 h |" in estimate_table()
    monkeypatch.setattr(estimates, "GPU_IMAGES_PER_SECOND", {"T4": 500.0})
    assert "| Paper A, all | 1.0 h |" in estimate_table() and "| the whole book | 1.0 h |" in estimate_table()


@pytest.mark.slow
def test_readme_and_the_book_show_the_computed_table_and_the_book_fits_three_h100_hours():
    """Counting every configuration's FLOPs (meta device) takes about a minute on two cores."""
    table = estimate_table()
    for doc in ("README.md", "book/running.md"):
        text = (REPO / doc).read_text()
        shown = re.search(r"<!-- estimates: medlib.estimates.estimate_table\(\) -->\n(.*?)\n<!-- /estimates -->",
                          text, re.S)
        assert shown and shown.group(1) == table, f"{doc}: regenerate with medlib.estimates.estimate_table()"
    work = estimates.work()
    book = sum(v for k, v in work.items() if k.startswith(estimates.WHOLE_BOOK))
    assert gpu_seconds(book, "H100") <= 3 * 3600  # the goal for the whole book's full profile
