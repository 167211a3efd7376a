"""Lanes: Part A's and Part B's notebooks run side by side, the setup first and the results last."""

import json
import os
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from medlib.book import NotebookFailed, execute_notebooks, notebook_lanes, toc_notebooks


def test_the_books_lanes_are_part_a_and_part_b_between_the_setup_and_the_results():
    first, lanes, last = notebook_lanes(toc_notebooks(REPO))
    assert [p.name[:2] for p in first] == ["00", "01"]
    assert [[p.name[:2] for p in lane] for lane in lanes] == [
        ["10", "11", "12", "13", "14", "15", "16"],
        ["20", "21", "22", "23", "24", "25", "26"],
    ]
    assert [p.name[:2] for p in last] == ["90"]


def test_an_unnumbered_notebook_runs_first_in_toc_order():
    names = [Path(n) for n in ("intro.ipynb", "10_a.ipynb", "setup.ipynb", "95_end.ipynb", "31_b.ipynb")]
    first, lanes, last = notebook_lanes(names)
    assert [p.name for p in first] == ["intro.ipynb", "setup.ipynb"]
    assert [[p.name for p in lane] for lane in lanes] == [["10_a.ipynb"], ["31_b.ipynb"]]
    assert [p.name for p in last] == ["95_end.ipynb"]


def _book(root: Path, cells: dict[str, str]) -> None:
    """A toy book: one notebook per entry (name → the code of its one cell), in this toc order."""
    (root / "notebooks").mkdir(parents=True)
    chapters = "".join(f"  - file: notebooks/{name}\n" for name in cells)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: notebooks/{next(iter(cells))}\nchapters:\n"
                                   + chapters.split("\n", 1)[1])
    for name, code in cells.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        params = nbformat.v4.new_code_cell('profile = "auto"')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")


RECORD = '''import json, os, time
with open({log!r}, "a") as f:
    f.write(json.dumps({{"nb": {name!r}, "kernel_parent": os.getppid(), "threads": os.environ.get("OMP_NUM_THREADS"),
                         "t0": time.time()}}) + "\\n")
{extra}'''


def _record(log: Path, name: str, extra: str = "") -> str:
    return RECORD.format(log=str(log), name=name, extra=extra)


def test_lanes_run_in_their_own_processes_between_the_setup_and_the_results(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # the cores to share are counted in this process
    log = tmp_path / "log.jsonl"
    names = ["00_setup", "10_a", "11_a", "20_b", "90_results"]
    # 10_a outlasts the whole of lane 2, so 11_a starts when its lane is the only one left
    _book(tmp_path / "book", {name: _record(log, name, "time.sleep(15)" if name == "10_a" else "") for name in names})
    done = execute_notebooks(tmp_path / "book", tmp_path / "staging", "smoke", jobs=2)
    assert sorted(d.source.stem for d in done) == sorted(names)
    runs = {e["nb"]: e for e in map(json.loads, log.read_text().splitlines())}
    here = os.getpid()
    # the setup and the results run from this process; each lane from its own process
    assert runs["00_setup"]["kernel_parent"] == here == runs["90_results"]["kernel_parent"]
    assert runs["10_a"]["kernel_parent"] == runs["11_a"]["kernel_parent"] != runs["20_b"]["kernel_parent"]
    assert here not in (runs["10_a"]["kernel_parent"], runs["20_b"]["kernel_parent"])
    # 4 cores shared by the 2 running lanes; all 4 once lane 2 is done
    assert (runs["10_a"]["threads"], runs["20_b"]["threads"], runs["11_a"]["threads"]) == ("2", "2", "4")
    assert runs["00_setup"]["threads"] is None and runs["90_results"]["threads"] is None  # left to torch
    assert runs["00_setup"]["t0"] < min(runs[n]["t0"] for n in ("10_a", "20_b"))
    assert runs["10_a"]["t0"] < runs["11_a"]["t0"]
    assert runs["90_results"]["t0"] > max(runs[n]["t0"] for n in ("11_a", "20_b"))
    assert (tmp_path / "staging" / "notebooks" / "90_results.ipynb").is_file()


def test_threads_the_user_fixed_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    log = tmp_path / "log.jsonl"
    _book(tmp_path / "book", {name: _record(log, name) for name in ("10_a", "20_b")})
    execute_notebooks(tmp_path / "book", tmp_path / "staging", "smoke", jobs=2)
    assert {json.loads(line)["threads"] for line in log.read_text().splitlines()} == {"3"}


def test_one_job_runs_every_notebook_in_toc_order_in_this_process(tmp_path):
    log = tmp_path / "log.jsonl"
    names = ["00_setup", "20_b", "10_a", "90_results"]
    _book(tmp_path / "book", {name: _record(log, name) for name in names})
    execute_notebooks(tmp_path / "book", tmp_path / "staging", "smoke", jobs=1)
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["nb"] for r in runs] == names
    assert {r["kernel_parent"] for r in runs} == {os.getpid()}


def test_a_failing_lane_stops_the_others_after_their_running_notebook(tmp_path):
    log = tmp_path / "log.jsonl"
    _book(tmp_path / "book", {
        "10_fails": _record(log, "10_fails", "raise ValueError('planted fault')"),
        "11_never": _record(log, "11_never"),
        # still running when 10 fails: it finishes, and the notebook after it never starts
        "20_running": _record(log, "20_running", "time.sleep(20)"),
        "21_never": _record(log, "21_never"),
        "90_never": _record(log, "90_never"),
    })
    with pytest.raises(NotebookFailed, match=r"10_fails\.ipynb failed in cell \d+.*planted fault"):
        execute_notebooks(tmp_path / "book", tmp_path / "staging", "smoke", jobs=2)
    ran = [json.loads(line)["nb"] for line in log.read_text().splitlines()]
    assert sorted(ran) == ["10_fails", "20_running"]
    assert (tmp_path / "staging" / "notebooks" / "20_running.ipynb").is_file()


def test_jobs_must_be_positive(tmp_path):
    _book(tmp_path / "book", {"00_setup": "pass"})
    with pytest.raises(Exception, match="jobs must be at least 1"):
        execute_notebooks(tmp_path / "book", tmp_path / "staging", "smoke", jobs=0)


def test_on_cuda_each_lane_gets_its_own_gpu(monkeypatch):
    # the path a lab machine with several GPUs takes (no GPU here: torch.cuda answers as on one)
    import torch

    from medlib.book import _lane_environments, default_jobs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert default_jobs() == 2
    assert _lane_environments(2) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    # the GPUs the user made visible, round robin when lanes outnumber them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert [e["CUDA_VISIBLE_DEVICES"] for e in _lane_environments(3)] == ["3", "5", "3"]
