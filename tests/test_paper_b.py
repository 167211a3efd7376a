"""Paper B's experiment plumbing (medlib.experiments.paper_b) on a small synthetic derm7pt.

The tiny runs check wiring, not accuracy: the weights are searched on VALID and scored on
TEST, predictions come from the saved SWA weights (BN statistics recomputed through the
two-input model), TTA really averages views, a second call trains nothing, results are
written with provenance. The dry run pushes the real full-size AMMFM at 224 px through
the same code path for two optimizer steps.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from medlib.ammfm.tasks import TASKS
from medlib.experiments import paper_b as pb
from medlib.profiles import FULL, SMOKE

TINY = {"image_size": 32, "epochs": 2, "swa_epochs": 1, "batch_size": 8, "tta_views": 2, "n_runs": 1, "weight_grid": 4}
AMMFM = pb.Config("mobilenet_v3_small", "swin_v2_t", "aab")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A private $MEDLIB_HOME holding the synthetic derm7pt, shared by this module's tests."""
    path = tmp_path_factory.mktemp("medlib_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDLIB_HOME", str(path))
    pb._RUN_CACHE.clear()
    yield path
    mp.undo()
    pb._RUN_CACHE.clear()


@pytest.fixture(scope="module")
def data(home):
    return pb.load_pairs(SMOKE, image_size=TINY["image_size"])


@pytest.fixture(scope="module")
def tiny_run(data):
    return pb.train_config(AMMFM, SMOKE, run=0, data=data, overrides=TINY, max_steps=2, verbose=False)


def test_targets_follow_the_official_splits_in_order(tiny_run, data):
    # max_steps=2 also limits evaluation to two batches of 8: the first 16 cases, unshuffled
    for split in ("valid", "test"):
        np.testing.assert_array_equal(tiny_run.targets[split], data.labels[data.splits[split][:16]])


def test_weights_are_searched_on_valid_and_scored_on_test(tiny_run):
    m = pb.run_metrics(tiny_run)
    w = (m["w_D"], m["w_C"], m["w_FU"])
    assert sum(w) == pytest.approx(1.0)
    # the reported test accuracy is the test accuracy of the fused prediction with those weights
    test = tiny_run.predictions["swa/tta"]["test"]
    y = tiny_run.targets["test"]
    accs = []
    for k in range(len(TASKS)):
        fused = sum(wi * np.exp(test[b][k]) for wi, b in zip(w, ("dermoscopy", "clinical", "fusion")))
        accs.append(float((fused.argmax(1) == y[:, k]).mean()))
    assert m["avg_acc"] == pytest.approx(np.mean(accs))
    # and the search objective is the valid accuracy of the same weights
    valid = tiny_run.predictions["swa/tta"]["valid"]
    yv = tiny_run.targets["valid"]
    vaccs = [float((sum(wi * np.exp(valid[b][k]) for wi, b in zip(w, ("dermoscopy", "clinical", "fusion"))).argmax(1)
                    == yv[:, k]).mean()) for k in range(len(TASKS))]
    assert m["valid_avg_acc"] == pytest.approx(np.mean(vaccs))
    assert 0.0 <= m["avg_auc"] <= 1.0 and m["n_auc"] >= 10


def test_logit_weighting_is_computed_beside_probability_weighting(tiny_run):
    p = pb.run_metrics(tiny_run, mode="probability")
    lg = pb.run_metrics(tiny_run, mode="logit")
    assert set(p) == set(lg)
    assert np.isfinite(lg["avg_acc"])


def test_saved_swa_weights_reproduce_the_one_view_predictions(tiny_run, data):
    model = pb.load_model(tiny_run)
    idx = np.array(data.splits["test"][:5])
    (c, d), _ = pb._eval_batch(((data.clinical[idx], data.dermoscopy[idx]), torch.zeros(5, 8, dtype=torch.long)),
                               torch.device("cpu"))
    with torch.no_grad():
        out = model(c, d)
    for branch in ("clinical", "dermoscopy", "fusion"):
        for k in range(len(TASKS)):
            expected = torch.softmax(out[branch][k], 1).numpy()
            saved = np.exp(tiny_run.predictions["swa/1"]["test"][branch][k][:5])  # log-probabilities, clamped at 1e-12
            np.testing.assert_allclose(saved, expected, atol=1e-5)


def test_bn_statistics_were_recomputed_through_the_two_input_model(tiny_run):
    # update_bn resets every BatchNorm and counts the batches it sees: max_steps = 2 training batches
    state, _ = pb.load_weights(tiny_run.weights_path)
    counts = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    assert counts and set(counts.values()) == {2}, counts


def test_tta_and_swa_change_the_predictions(tiny_run):
    tta = tiny_run.predictions["swa/tta"]["test"]["fusion"][0]
    one = tiny_run.predictions["swa/1"]["test"]["fusion"][0]
    last = tiny_run.predictions["last/1"]["test"]["fusion"][0]
    assert not np.allclose(tta, one)  # views were averaged
    assert not np.allclose(one, last)  # SWA weights differ from the last epoch's
    np.testing.assert_allclose(np.exp(tta).sum(1), 1.0, atol=1e-5)


def test_second_call_reads_the_cache_and_trains_nothing(tiny_run, data, monkeypatch):
    pb._RUN_CACHE.clear()

    def no_training(*args, **kwargs):
        raise AssertionError("fit was called although the run is cached")

    monkeypatch.setattr(pb.runs, "fit", no_training)
    again = pb.train_config(AMMFM, SMOKE, run=0, data=data, overrides=TINY, max_steps=2, verbose=False)
    assert again.key == tiny_run.key
    np.testing.assert_array_equal(again.predictions["swa/tta"]["test"]["fusion"][3],
                                  tiny_run.predictions["swa/tta"]["test"]["fusion"][3])
    # another seed is another run: it must train
    with pytest.raises(AssertionError, match="fit was called"):
        pb.train_config(AMMFM, SMOKE, run=1, data=data, overrides=TINY, max_steps=2, verbose=False)


def test_table_json_carries_paper_numbers_runs_and_provenance(home, tiny_run, monkeypatch):
    profile = dataclasses.replace(SMOKE, paper_b=dataclasses.replace(SMOKE.paper_b, **TINY))
    monkeypatch.setattr(pb.runs, "_data_for", lambda P, overrides=None: tiny_run_data(home))
    monkeypatch.setattr(pb.runs, "train_config", _limited(pb.train_config))
    frame = pb.table2(profile)
    assert frame.loc["AVG", "CAFNet (paper)"] == "85.8"  # quoted
    assert frame.loc["AVG", "AMMFM (paper)"] == "88.1"  # the paper's best run ...
    assert frame.loc["AVG", "AMMFM (paper, mean ± std)"] == "87.6±0.4"  # ... and its mean (Table 8)
    m = pb.run_metrics(tiny_run)
    best = frame.loc["AVG", "AMMFM, ours: best of 1 runs (smoke, synthetic data)"]
    mean = frame.loc["AVG", "AMMFM, ours: mean ± std of 1 runs (smoke, synthetic data)"]
    assert best == mean == f"{100 * m['avg_auc']:.1f}"  # one run: best = mean, no ± part
    assert frame.loc["AVG", "Δ best (ours − paper)"] == f"{float(best) - 88.1:+.1f}"
    assert frame.loc["AVG", "Δ mean (ours − paper)"] == f"{float(mean) - 87.6:+.1f}"
    payload = json.loads((home / "results" / "paper_b" / "table2-smoke.json").read_text())
    assert payload["provenance"]["profile"] == "smoke" and payload["provenance"]["data_source"] == "synthetic"
    assert payload["weighting"] == {"variant": "swa/tta", "mode": "probability", "searched_on": "valid", "scored_on": "test"}
    (run,) = payload["runs"]["AMMFM"]["per_run"]
    assert run["avg_auc"] == pytest.approx(m["avg_auc"])
    assert payload["runs"]["AMMFM"]["keys"] == [tiny_run.key]


def tiny_run_data(home):
    return pb.load_pairs(SMOKE, image_size=TINY["image_size"])


def _limited(train_config):
    def wrapped(config, profile, run=0, **kwargs):
        kwargs.setdefault("max_steps", 2)
        kwargs["verbose"] = False
        return train_config(config, profile, run, **kwargs)
    return wrapped


def test_configs_cover_every_table_and_name_files_uniquely():
    configs = pb.all_configs(SMOKE)
    assert len(configs) == 20 and len({c.name for c in configs}) == 20
    rows = pb.table_configs(SMOKE)
    assert set(rows["9"][i][0] for i in range(6)) == set(pb.PAPER_ROWS_AVG["9"])
    assert dict(rows["6"])["AFF + AAB"] == dict(rows["7"])["AMMMF: Clin MN, Derm ST"] == AMMFM
    with pytest.raises(pb.MedlibError, match="fusion"):
        pb.Config(None, "swin_v2_t", "aab")


def test_unknown_setting_override_is_refused(data):
    with pytest.raises(pb.MedlibError, match="unknown paper_b setting"):
        pb.train_config(AMMFM, SMOKE, data=data, overrides={"epoch": 1})


def test_full_profile_dry_run_real_architecture_at_224(home):
    """The full profile's AMMFM (MobileNetV3-S + Swin V2-T, AAB) at 224 px, two optimizer steps on CPU."""
    ds = pb.load_pairs(SMOKE, image_size=32).dataset  # the synthetic files; decoded again at 224 below
    data = pb.load_pairs(FULL, dataset=ds, image_size=224)
    overrides = {"epochs": 1, "swa_epochs": 1, "batch_size": 2, "tta_views": 2}
    run = pb.train_config(AMMFM, FULL, data=data, overrides=overrides, max_steps=2, pretrained=False, verbose=False)
    assert run.meta["trained_parameters"] == 33_060_642  # the real architecture, the paper's 33.06M
    assert run.meta["settings"]["image_size"] == 224 and run.meta["settings"]["lr"] == FULL.paper_b.lr
    assert len(run.history) == 1 and np.isfinite(run.history["train_loss"].iloc[0])
    assert run.targets["test"].shape == (4, 8)  # two batches of two
    m = pb.run_metrics(run)
    assert np.isfinite(m["avg_acc"])
