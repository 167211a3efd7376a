"""Notebook 24's step-by-step AMMFM run is what the tables train: the same weights, to the bit (smoke, CPU).

The test runs the notebook's own cells (tagged ``ammfm-recipe``), so what a reader follows is
what is checked, against :func:`medlib.experiments.paper_b.train_config` with the same seed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import torch

from medlib.experiments import paper_b
from medlib.profiles import SMOKE

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "24_training_and_comparison.ipynb"


def _recipe_cells() -> list[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c.source for c in nb.cells if "ammfm-recipe" in c.metadata.get("tags", [])]


def test_the_notebooks_step_by_step_run_trains_the_tables_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    monkeypatch.setattr(paper_b.runs, "_RUN_CACHE", {})
    cells = _recipe_cells()
    assert len(cells) == 4, "notebook 24 lost its step-by-step cells (tag ammfm-recipe)"
    ammfm = paper_b.table_configs(SMOKE)["2"][0][1]
    seed = SMOKE.first_seed
    ns = {"P": SMOKE, "seed": seed, "paper_b": paper_b, "ammfm": ammfm}
    for source in cells:
        exec(compile(source, str(NOTEBOOK), "exec"), ns)

    run = paper_b.train_config(ammfm, SMOKE, 0, seed=seed, data=ns["data"], verbose=False)
    tables = paper_b.load_model(run).state_dict()
    ours = ns["swa"].state_dict()
    assert tables.keys() == ours.keys()
    for key, value in tables.items():
        assert torch.equal(value, ours[key].cpu()), key

    # not trivially equal: training moved the weights away from the seeded initial model
    torch.manual_seed(seed)
    initial = ammfm.build(SMOKE.paper_b.backbone_size, SMOKE.paper_b.pretrained).state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in tables.items() if v.is_floating_point())
    # the schedule the page measures (its SWA window's share of the learning rate) is fit's
    assert ns["lrs"] == list(run.history["lr"])
    # the TTA predictions of the page are the tables' (which average the views in another order)
    for a, b in zip(run.predictions["swa/tta"]["test"]["fusion"], ns["test_log_probs"]["fusion"]):
        np.testing.assert_allclose(np.exp(a), np.exp(b), atol=1e-6)  # in probability: the log of ~0 is unstable
    np.testing.assert_array_equal(run.targets["test"], ns["test_targets"])
