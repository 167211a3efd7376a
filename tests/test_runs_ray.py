"""Runs on a local Ray of 2 CPU workers: same weights as the local executor, retries resume from checkpoints.

A whole Paper A table (θ_pre, four sites, full training; one seed) with the smoke profile made
tiny (2 epochs, 32 px), so the module takes about two minutes on two shared cores.
"""

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

from medlib.profiles import SMOKE  # noqa: E402
from medlib.runs import Selection, execute, plan  # noqa: E402

pytestmark = pytest.mark.slow

TINY = dataclasses.replace(SMOKE, seeds=(0,), paper_a=dataclasses.replace(
    SMOKE.paper_a, epochs=3, image_size=32, pretrain_epochs=2, pretrain_images=480, synth_sizes=()))
TABLE = Selection(paper="a", datasets=("bladder-tissue",))
FULL_RUN = "a:bladder-tissue:full:s0"
KILL_HOOK = Path(__file__).parent / "kill_hook"  # its sitecustomize.py: imported by every Ray worker


def tensor_digests(home):
    """sha256 of every artifact's tensors (names, dtypes, shapes, bytes) by path under ``home``.

    The files' own bytes also hold the measured epoch seconds in their metadata, which differ
    between any two executions; the weights must not.
    """
    from safetensors.torch import load_file

    out = {}
    for path in sorted(home.glob("artifacts/paper_a/*.safetensors")) + sorted(home.glob("tensors/pretrain-*.safetensors")):
        h = hashlib.sha256()
        for name, t in sorted(load_file(str(path)).items()):
            h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        out[str(path.relative_to(home))] = h.hexdigest()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The table trained by the local executor (one run after the other in this process)."""
    home = tmp_path_factory.mktemp("local-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLIB_HOME", str(home))
        report = execute(TINY, TABLE, executor="local")
    assert not report.failed and len(report.trained) == 6
    return tensor_digests(home)


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    with pytest.MonkeyPatch.context() as mp:
        # the workers inherit it from the Ray this starts; the hook is idle until a test arms it
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(KILL_HOOK), os.environ.get("PYTHONPATH")])))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_home(tmp_path_factory, ray_cluster, reference):
    """The same table executed as Ray tasks, and what the executor printed."""
    home = tmp_path_factory.mktemp("ray-home")
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLIB_HOME", str(home))
        report = execute(TINY, TABLE, executor="ray", cpus_per_run=1, poll_s=1.0, out=lines.append)
    return home, report, lines


def test_ray_executes_the_table_with_the_local_executors_weights(ray_home, reference):
    home, report, lines = ray_home
    assert not report.failed
    assert sorted(report.trained) == sorted(["a:theta_pre:pretrain:s3315", FULL_RUN] +
                                            [f"a:bladder-tissue:site{k}:s0" for k in range(1, 5)])
    assert tensor_digests(home) == reference  # same paths (keys) and bitwise the same tensors
    assert "5/5 done, 0 running, 0 waiting, 0 failed" in lines[-1]
    assert any("5 runs on Ray" in line and "2 at a time" in line for line in lines)


def test_after_ray_every_run_is_done_and_a_second_execute_trains_nothing(ray_home, monkeypatch, capsys):
    from medlib.experiments.paper_a import train_sites

    home, _, _ = ray_home
    monkeypatch.setenv("MEDLIB_HOME", str(home))
    planned = plan(TINY, TABLE)
    assert len(planned) == 6 and all(p.state.status == "done" and p.estimate_s == 0 for p in planned)
    assert all(p.state.epoch_seconds > 0 for p in planned if p.run.role != "pretrain")  # measured, recorded
    again = execute(TINY, TABLE, executor="ray", cpus_per_run=1, poll_s=1.0, out=lambda line: None)
    assert again.trained == [] and not again.failed
    capsys.readouterr()
    trained = train_sites("bladder-tissue", TINY, 0)  # what the Part A notebooks call: reads, trains nothing
    assert len(trained.sites) == 4 and "images," not in capsys.readouterr().out  # no "site1: 47 images, ..." line


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_home, reference, tmp_path, monkeypatch):
    src, _, _ = ray_home
    home = tmp_path / "home"
    shutil.copytree(src, home)
    full = next((home / "artifacts" / "paper_a").glob("bladder-tissue-full-*.safetensors"))
    full.unlink()  # the full training has to run again: it will be killed once
    monkeypatch.setenv("MEDLIB_HOME", str(home))
    # medlib forwards MEDLIB_* variables to its Ray tasks: the worker running the full training arms the hook
    monkeypatch.setenv("MEDLIB_TEST_KILL_AFTER_CHECKPOINT", str(full.with_suffix(".ckpt")))
    monkeypatch.setenv("MEDLIB_TEST_KILL_MARKER", str(tmp_path / "killed"))
    monkeypatch.setenv("MEDLIB_CHECKPOINT_EVERY_S", "0")  # a checkpoint after every epoch, where honoured
    report = execute(TINY, TABLE, executor="ray", cpus_per_run=1, max_retries=2, poll_s=1.0, out=lambda line: None)
    assert (tmp_path / "killed").exists()  # the hook did kill the worker once
    assert not report.failed and report.trained == [FULL_RUN]
    assert 1 <= report.resumed[FULL_RUN] <= TINY.paper_a.epochs  # the retry started from the checkpoint
    assert not full.with_suffix(".ckpt").exists()
    assert tensor_digests(home) == reference
