"""Runs without Ray: state read from real files, cost estimates, selections, the ``runs plan`` command."""

import dataclasses
import json
import math

import pytest
import torch

from medlib.errors import MedlibError
from medlib.io import save_weights
from medlib.runs.execute import Progress
from medlib.runs.plan import PlannedRun, Selection, estimate, format_duration
from medlib.runs.spec import Run, RunState, read_state
from medlib.train import TrainConfig, fit, make_loader


def _run(subject="retina", role="site1", *, paper="a", epochs=10, n_train=100, family=None, key="k"):
    base = f"artifacts/{subject}-{role}-{key}"
    return Run(paper, subject, role, 0, key, "smoke", epochs, n_train, (base + ".safetensors",), base + ".ckpt",
               family=family or f"{paper}:{subject}")


def test_state_done_reads_epoch_times_from_the_weights_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    run = _run()
    assert read_state(run) == RunState("missing")
    history = [{"epoch": 1, "seconds": 2.0}, {"epoch": 2, "seconds": 4.0}, {"epoch": 3, "seconds": 3.0}]
    save_weights(tmp_path / run.artifacts[0], {"w": torch.zeros(2)}, {"history": history})
    state = read_state(run)
    assert state.status == "done" and state.epochs_done == 10
    assert state.epoch_seconds == pytest.approx(3.0)  # (2 + 4 + 3) / 3


def test_state_partial_counts_the_epochs_of_a_real_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    run = _run(epochs=5)
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randint(0, 2, (16,)))
    model = torch.nn.Linear(3, 2)
    cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=8, device="cpu", log_every=0)
    ckpt = tmp_path / run.checkpoint
    ckpt.parent.mkdir(parents=True)
    history = fit(model, make_loader(data, 8, shuffle=True), cfg, checkpoint_path=ckpt, checkpoint_every_s=0)
    state = read_state(run)
    assert state.status == "partial" and state.epochs_done == 2
    assert state.epoch_seconds == pytest.approx(sum(r["seconds"] for r in history.records) / 2)


def test_estimates_scale_measured_epoch_times_by_family_then_paper():
    done = _run("retina", "site1", n_train=100, key="a")  # 2.0 s/epoch on 100 items: 0.02 s per item-epoch
    partial = _run("retina", "site2", n_train=100, key="b")
    fresh = _run("retina", "full", n_train=400, key="c")
    other = _run("pad-ufes-20", "site1", n_train=50, key="d")  # no family measurement: Paper A's rate
    paper_b = _run("MN-ST-aab", "run0", paper="b", key="e")  # nothing measured for Paper B
    prior = dataclasses.replace(_run("MN-ST-xyz", "run0", paper="b", key="f"), prior_s=500.0, prior_basis="T4")
    planned = {p.run.key: p for p in estimate([
        (done, RunState("done", 10, 2.0)), (partial, RunState("partial", 4, 3.0)), (fresh, RunState("missing")),
        (other, RunState("missing")), (paper_b, RunState("missing")), (prior, RunState("partial", 6))])}
    assert planned["a"].estimate_s == 0.0
    assert planned["b"].estimate_s == pytest.approx(6 * 3.0)  # its own epochs: 6 left × 3 s
    # family rate = mean(2.0/100, 3.0/100) = 0.025 s per item-epoch
    assert planned["c"].estimate_s == pytest.approx(10 * 400 * 0.025)
    assert planned["d"].estimate_s == pytest.approx(10 * 50 * 0.025)
    assert planned["e"].estimate_s is None and planned["e"].basis == "unknown yet"
    assert (planned["f"].estimate_s, planned["f"].basis) == (pytest.approx(500.0 * 4 / 10), "T4")  # 4 of 10 left
    assert [planned[k].basis for k in "abc"] == ["done", "measured", "measured (similar runs)"]


def test_progress_divides_the_time_left_among_parallel_slots():
    runs = [PlannedRun(_run(role=f"site{k}", key=str(k)), RunState("missing"), 100.0) for k in range(4)]
    lines = []
    progress = Progress(runs, slots=2, out=lines.append)
    assert progress.seconds_left() == pytest.approx(400.0 / 2)
    progress.finished(runs[0].run.id, ok=False)
    progress.show()
    assert "0/4 done, 0 running, 3 waiting, 1 failed" in lines[-1]
    assert progress.seconds_left() == pytest.approx(300.0 / 2)
    assert format_duration(3725) == "1 h 02 min" and format_duration(None) == "?" and format_duration(math.nan) == "?"


@pytest.mark.parametrize("kwargs, message", [
    ({"table": "1"}, "--table needs --paper"),
    ({"paper": "a", "table": "4"}, "Paper A has no Table 4"),
    ({"paper": "b", "table": "1"}, "Paper B has no trained Table 1"),
    ({"paper": "c"}, "expected 'a'"),
    ({"paper": "beyond", "table": "2"}, "--table needs --paper"),
])
def test_a_bad_selection_says_what_is_expected(kwargs, message):
    with pytest.raises(MedlibError, match=message):
        Selection(**kwargs)


def test_plan_json_lists_theta_pre_and_every_site_of_a_paper_a_table(tmp_path, monkeypatch, capsys):
    from medlib.cli.runs import main

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    assert main(["runs", "plan", "--profile", "smoke", "--paper", "a", "--table", "2", "--seed", "0", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    ids = [r["id"] for r in plan["runs"]]
    assert ids == ["a:theta_pre:pretrain:s3315"] + [f"a:bladder-tissue:{r}:s0" for r in
                                                    ("site1", "site2", "site3", "site4", "full")]
    assert {r["status"] for r in plan["runs"]} == {"missing"}
    summary = plan["summary"]
    assert {k: summary[k] for k in ("done", "partial", "missing", "runs", "unestimated")} == {
        "done": 0, "partial": 0, "missing": 6, "runs": 6, "unestimated": 0}
    # nothing measured yet: every run has smoke's CPU estimate, and the total is their sum
    assert {r["basis"] for r in plan["runs"]} == {"estimated (CPU)"}
    assert summary["estimate_s"] == pytest.approx(sum(r["estimate_s"] for r in plan["runs"]))
    sites = plan["runs"][1:]
    # until θ_pre exists the fine-tunings' keys (which hash θ_pre) are unknown, and they wait for it
    assert all(r["key"] == "" and r["needs"] == ["a:theta_pre:pretrain:s3315"] for r in sites)
    assert sum(r["n_train"] for r in sites[:4]) == sites[4]["n_train"]  # the full model trains on every site


def test_execute_refuses_address_without_ray(capsys):
    from medlib.cli.runs import main

    assert main(["runs", "execute", "--profile", "smoke", "--paper", "a", "--address", "auto"]) == 2
    assert "--executor ray" in capsys.readouterr().err


def test_a_paper_b_run_executed_here_is_the_run_the_tables_read(tmp_path, monkeypatch, capsys):
    from medlib.experiments.paper_b import all_configs, train_config
    from medlib.profiles import SMOKE
    from medlib.runs import execute, plan

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    selection = Selection(paper="b", configs=("MN-ST-aab",), n_runs=1)
    report = execute(SMOKE, selection, executor="local", out=lambda line: None)
    assert report.trained == ["b:MN-ST-aab:run0:s0"] and not report.failed
    (planned,) = plan(SMOKE, selection)
    assert planned.state.status == "done" and planned.state.epoch_seconds > 0
    capsys.readouterr()
    ammfm = next(c for c in all_configs(SMOKE) if c.name == "MN-ST-aab")
    result = train_config(ammfm, SMOKE, 0)  # what Tables 2-10 call: it finds the run, trains nothing
    assert result.key == planned.run.key and "trained" not in capsys.readouterr().out


def test_planning_without_derm7pt_names_the_paper_and_the_fix(tmp_path, monkeypatch):
    from medlib.profiles import FULL
    from medlib.runs import plan

    monkeypatch.setenv("MEDLIB_HOME", str(tmp_path))
    monkeypatch.setenv("MEDLIB_DATA_DERM7PT", str(tmp_path / "derm7pt-not-here"))
    with pytest.raises(MedlibError, match=r"cannot list Paper B's runs: .*derm7pt") as info:
        plan(FULL, Selection(paper="b"))
    assert "MEDLIB_DATA_DERM7PT" in str(info.value)
