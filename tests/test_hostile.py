"""The catalogue of hostile inputs and faults: every one must be *handled*.

Handled means what README's Reliability section promises: a command refuses in one line on
stderr that names the file or value, exits with status 2, prints no traceback and leaves no
output behind; a library call raises a :class:`~medlib.errors.MedlibError` of one line naming
it; nothing lands outside its folder; nothing resumes the wrong run. Each case below plants
one fault. ``test_catalogue`` tries them all and prints "N tried, N handled"; it fails
listing every case that was not handled. Add a case with every new loader or command.

Commands run in-process (``medlib.cli.main``, the same code path as ``python -m medlib``);
the concurrency cases start real processes.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from medlib.cli import main
from medlib.errors import MedlibError
from medlib.profiles import SMOKE

CASES: list[tuple[str, str, object]] = []  # (kind, name, function(ctx))
VERBOSE = bool(os.environ.get("MEDLIB_HOSTILE_VERBOSE"))  # print each refusal and the slowest cases


def case(kind: str, name: str):
    def register(fn):
        CASES.append((kind, name, fn))
        return fn
    return register


class Ctx:
    """What every case gets: a scratch folder, the shared synthetic retina, θ_pre, the CLI."""

    def __init__(self, tmp: Path, retina: Path, pre: Path, capsys):
        self.tmp, self.retina, self.pre, self.capsys = tmp, retina, pre, capsys

    def cli(self, *args) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            rc = exc.code
        out, err = self.capsys.readouterr()
        return rc, out, err

    def refused(self, *args, names: str, out: Path | None = None) -> None:
        """The command exits 2 with one stderr line naming ``names``, no traceback, no ``out`` written."""
        rc, _, err = self.cli(*args)
        lines = err.strip().splitlines()
        assert rc == 2, f"exit {rc}: {err[-500:]}"
        assert len(lines) == 1 and "Traceback" not in err, err[-800:]
        assert names in lines[0], f"{names!r} not named in: {lines[0]}"
        if VERBOSE:
            with self.capsys.disabled():
                print(f"    {lines[0][:300]}")
        if out is not None:
            assert not out.exists(), f"{out} was written"

    def data(self, *extra) -> list:
        return ["--dataset", "retina", "--root", self.retina, "--profile", "smoke", "--seed", 0, *extra]

    def file(self, name: str) -> Path:
        return self.tmp / name


def library_refuses(fn, names: str) -> None:
    """``fn()`` raises a one-line MedlibError naming ``names``."""
    with pytest.raises(MedlibError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message and names in message, message
    if VERBOSE:
        print(f"    {message[:300]}", file=sys.__stdout__)


# --- weights files ----------------------------------------------------------------------------------------------

def _pre_tensors(ctx) -> tuple[dict, dict]:
    from medlib.io import load_weights

    return load_weights(ctx.pre)


def _write(path: Path, state: dict, meta) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()},
              str(path), metadata=None if meta is None else {"medlib": meta if isinstance(meta, str) else json.dumps(meta)})
    return path


def _evaluate_refuses(ctx, model: Path, names: str | None = None):
    ctx.refused("evaluate", "--model", model, *ctx.data(), names=names or model.name)


@case("files", "evaluate: a pickle (torch.save) as the model")
def _(ctx):
    path = ctx.file("model.safetensors")
    torch.save({"w": torch.zeros(1)}, path)
    _evaluate_refuses(ctx, path)


@case("files", "evaluate: an empty file")
def _(ctx):
    path = ctx.file("empty.safetensors")
    path.write_bytes(b"")
    _evaluate_refuses(ctx, path)


@case("files", "evaluate: random bytes")
def _(ctx):
    path = ctx.file("random.safetensors")
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _evaluate_refuses(ctx, path)


@case("files", "evaluate: a truncated safetensors (an upload cut by a disconnect)")
def _(ctx):
    path = ctx.file("cut.safetensors")
    data = ctx.pre.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _evaluate_refuses(ctx, path)


@case("files", "evaluate: safetensors without medlib metadata")
def _(ctx):
    state, _ = _pre_tensors(ctx)
    _evaluate_refuses(ctx, _write(ctx.file("bare.safetensors"), state, None))


@case("metadata", "evaluate: broken JSON metadata")
def _(ctx):
    state, _ = _pre_tensors(ctx)
    _evaluate_refuses(ctx, _write(ctx.file("json.safetensors"), state, '{"arch": "test_resnet", '))


@case("metadata", "evaluate: metadata that is a JSON list")
def _(ctx):
    state, _ = _pre_tensors(ctx)
    _evaluate_refuses(ctx, _write(ctx.file("list.safetensors"), state, "[1, 2]"))


@case("metadata", 'evaluate: num_classes "four"')
def _(ctx):
    state, meta = _pre_tensors(ctx)
    _evaluate_refuses(ctx, _write(ctx.file("four.safetensors"), state, {**meta, "num_classes": "four"}), "'four'")


@case("metadata", "evaluate: num_classes that disagrees with the head's shape")
def _(ctx):
    state, meta = _pre_tensors(ctx)
    _evaluate_refuses(ctx, _write(ctx.file("seven.safetensors"), state, {**meta, "num_classes": 7}), "head.weight")


@case("metadata", "evaluate: an arch that disagrees with the tensors")
def _(ctx):
    state, meta = _pre_tensors(ctx)
    _evaluate_refuses(ctx, _write(ctx.file("arch.safetensors"), state, {**meta, "arch": "resnet18"}))


@case("metadata", "evaluate: an arch timm does not have")
def _(ctx):
    state, meta = _pre_tensors(ctx)
    _evaluate_refuses(ctx, _write(ctx.file("bogus.safetensors"), state, {**meta, "arch": "bogus_net"}), "bogus_net")


@case("metadata", "evaluate: backbone_classes 200000000 is refused without allocating it")
def _(ctx):
    state, meta = _pre_tensors(ctx)
    path = _write(ctx.file("huge.safetensors"), state, {**meta, "backbone_classes": 200_000_000})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _evaluate_refuses(ctx, path, "backbone")
    grown_gib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20
    assert grown_gib < 1.0, f"the process grew by {grown_gib:.1f} GiB"


def _non_finite(ctx, name: str, value: float) -> Path:
    state, meta = _pre_tensors(ctx)
    key = next(k for k in state if k.startswith("backbone.") and k.endswith("weight"))
    state[key] = state[key].clone()
    state[key].view(-1)[3] = value
    return _write(ctx.file(name), state, meta)


@case("files", "evaluate: NaN weights")
def _(ctx):
    _evaluate_refuses(ctx, _non_finite(ctx, "nan.safetensors", float("nan")), "NaN")


@case("files", "restore-bn: infinite weights, and no model written")
def _(ctx):
    out = ctx.file("restored.safetensors")
    model = _non_finite(ctx, "inf.safetensors", float("inf"))
    ctx.refused("restore-bn", "--model", model, *ctx.data(), "--out", out, names=model.name, out=out)


@case("files", "restore-bn: finite weights whose recomputed statistics overflow: refused, nothing written")
def _(ctx):
    state, meta = _pre_tensors(ctx)
    stem = next(k for k, v in state.items() if v.ndim == 4)  # the first convolution
    state[stem] = state[stem] * 1e38  # finite weights, activations that overflow to inf
    model, out = _write(ctx.file("overflow.safetensors"), state, meta), ctx.file("overflow-restored.safetensors")
    ctx.refused("restore-bn", "--model", model, *ctx.data(), "--site", 1, "--out", out, names=model.name, out=out)


@case("files", "merge: a truncated site model")
def _(ctx):
    cut, out = ctx.file("site-cut.safetensors"), ctx.file("merged.safetensors")
    data = ctx.pre.read_bytes()
    cut.write_bytes(data[: len(data) - 100])
    ctx.refused("merge", "--pretrained", ctx.pre, "--models", cut, "--out", out, names=cut.name, out=out)


@case("metadata", "merge: a site model whose num_classes lies")
def _(ctx):
    state, meta = _pre_tensors(ctx)
    site, out = _write(ctx.file("site-lies.safetensors"), state, {**meta, "num_classes": 9}), ctx.file("m.safetensors")
    ctx.refused("merge", "--pretrained", ctx.pre, "--models", site, "--out", out, names=site.name, out=out)


@case("metadata", "DataVector.load: metadata keys that the tensors do not have")
def _(ctx):
    from medlib.vectors import DataVector

    path = _write(ctx.file("tau.safetensors"), {"a": torch.zeros(2)},
                  {"kind": "data_vector", "keys": ["a", "backbone.missing"]})
    library_refuses(lambda: DataVector.load(path), path.name)


@case("files", "pretrained --pretrained-path: a pickle")
def _(ctx):
    path, out = ctx.file("backbone.pth"), ctx.file("pre2.safetensors")
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    ctx.refused("pretrained", *ctx.data(), "--pretrained-path", path, "--out", out, names=path.name, out=out)


@case("metadata", "pretrained --pretrained-path: tensors of another architecture")
def _(ctx):
    import timm

    path, out = ctx.file("efficientnet.safetensors"), ctx.file("pre3.safetensors")
    save_file(timm.create_model("test_efficientnet", num_classes=5).state_dict(), str(path))
    ctx.refused("pretrained", *ctx.data(), "--pretrained-path", path, "--out", out, names=path.name, out=out)


@case("metadata", "pretrained --pretrained-path: the right keys, one of another shape")
def _(ctx):
    import timm

    state = timm.create_model("test_resnet", num_classes=5).state_dict()
    state["conv1.weight"] = torch.zeros(3, 3, 3, 3)
    path, out = ctx.file("wide.safetensors"), ctx.file("pre5.safetensors")
    save_file(state, str(path))
    ctx.refused("pretrained", *ctx.data(), "--pretrained-path", path, "--out", out, names="conv1.weight", out=out)


@case("metadata", "pretrained --pretrained-path: an output layer of 200000000 classes declared by a thin tensor")
def _(ctx):
    import timm

    state = timm.create_model("test_resnet", num_classes=3).state_dict()
    state["fc.weight"] = torch.zeros(200_000_000, 1, dtype=torch.int8)  # 200 MB on disk; 1.6 TB if built
    path, out = ctx.file("thin.safetensors"), ctx.file("pre4.safetensors")
    save_file(state, str(path))
    try:
        ctx.refused("pretrained", *ctx.data(), "--pretrained-path", path, "--out", out, names=path.name, out=out)
    finally:
        path.unlink()


# --- checkpoints and interruptions ------------------------------------------------------------------------------

def _killed_checkpoint(ctx, site: int = 1) -> Path:
    """A real checkpoint of a killed fine-tuning of ``site`` (SIGKILL after its first checkpoint)."""
    out = ctx.file(f"killed-site{site}.safetensors")
    ckpt = out.with_name(out.name + ".ckpt")
    if not ckpt.exists():
        cmd = [sys.executable, "-m", "medlib", "finetune", *map(str, ctx.data()), "--site", str(site),
               "--pretrained", str(ctx.pre), "--epochs", "50", "--checkpoint-every", "0", "--out", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        assert ckpt.exists() and not out.exists()
    return ckpt


def _resume_refused(ctx, ckpt: Path, *extra, site: int = 1):
    out = ckpt.with_name(ckpt.name[: -len(".ckpt")])
    ctx.refused("finetune", *ctx.data(*extra), "--site", site, "--pretrained", ctx.pre, "--epochs", 50,
                "--resume", "--out", out, names=str(ckpt), out=out)


def _corrupt(ctx, name: str, data: bytes) -> Path:
    good = _killed_checkpoint(ctx).read_bytes()
    ckpt = ctx.file(f"ckpt-{name}.safetensors.ckpt")
    ckpt.write_bytes(data if data is not None else good[: len(good) // 2])
    return ckpt


@case("interruptions", "finetune --resume: a truncated checkpoint")
def _(ctx):
    _resume_refused(ctx, _corrupt(ctx, "trunc", None))


@case("interruptions", "finetune --resume: an empty checkpoint")
def _(ctx):
    _resume_refused(ctx, _corrupt(ctx, "empty", b""))


@case("interruptions", "finetune --resume: random bytes as the checkpoint")
def _(ctx):
    _resume_refused(ctx, _corrupt(ctx, "noise", np.random.default_rng(1).bytes(100_000)))


@case("interruptions", "finetune --resume: another site's checkpoint (site 3, stratified, resumes site 1's)")
def _(ctx):
    ckpt = _killed_checkpoint(ctx, site=1)
    other = ctx.file("other-site.safetensors.ckpt")
    other.write_bytes(ckpt.read_bytes())
    _resume_refused(ctx, other, "--partition", "stratified", site=3)


@case("interruptions", "finetune --resume: a checkpoint fine-tuned from another θ_pre")
def _(ctx):
    from medlib.models import load_classifier, save_classifier

    ckpt = _killed_checkpoint(ctx, site=1)
    other = ctx.file("other-pre.safetensors.ckpt")
    other.write_bytes(ckpt.read_bytes())
    model, meta = load_classifier(ctx.pre)
    with torch.no_grad():
        model.head.bias.add_(1.0)
    pre2 = ctx.file("pre-other.safetensors")
    save_classifier(pre2, model, meta)
    out = other.with_name("other-pre.safetensors")
    ctx.refused("finetune", *ctx.data(), "--site", 1, "--pretrained", pre2, "--epochs", 50, "--resume",
                "--out", out, names=str(other), out=out)


@case("interruptions", "resume with another thread count: said, then resumed")
def _(ctx):
    from medlib.train.precision import choose_precision
    from medlib.train.state import TrainingState
    from medlib.train import TrainConfig

    cfg = TrainConfig(lr=1e-2, epochs=2, device="cpu")
    state = TrainingState.create(torch.nn.Linear(2, 2), cfg, choose_precision(torch.device("cpu"), None, None))
    path = ctx.file("threads.ckpt")
    before = torch.get_num_threads()
    state.save(path)
    torch.set_num_threads(before + 1)
    try:
        ctx.capsys.readouterr()
        fresh = TrainingState.create(torch.nn.Linear(2, 2), cfg, choose_precision(torch.device("cpu"), None, None))
        fresh.load(path)
    finally:
        torch.set_num_threads(before)
    said = ctx.capsys.readouterr().out
    assert f"written with {before} threads, this process has {before + 1}" in said and str(path) in said
    assert torch.equal(fresh.model.weight, state.model.weight)


@case("interruptions", "a .NAME.tmp left by a killed save is removed at the next save of that file")
def _(ctx):
    from medlib.io import STALE_TMP_S, save_weights

    target = ctx.file("w.safetensors")
    stale, live = ctx.file(".w.safetensors.abc123.tmp"), ctx.file(".w.safetensors.def456.tmp")
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y")
    old = time.time() - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    save_weights(target, {"w": torch.zeros(2)}, {})
    assert not stale.exists() and live.exists(), "stale temporary kept, or a live writer's removed"


@case("files", "weights are readable by the other users of a shared home (mode from the umask)")
def _(ctx):
    from medlib.io import save_weights

    previous = os.umask(0o022)
    try:
        save_weights(ctx.file("shared.safetensors"), {"w": torch.zeros(2)}, {})
    finally:
        os.umask(previous)
    assert ctx.file("shared.safetensors").stat().st_mode & 0o777 == 0o644


def _toy_run(key: str):
    from medlib.runs.spec import Run

    base = f"artifacts/{key}/toy"  # a folder per run: ToyPaper logs its trainings there
    return Run("toy", "retina", "site1", 0, key, "smoke", 1, 1, (base + ".safetensors",), base + ".ckpt")


@case("interruptions", "runs plan: a truncated artifact is not done")
def _(ctx):
    from medlib.io import save_weights
    from medlib.runs.spec import read_state

    run = _toy_run("trunc")
    path = run.paths()[0]
    save_weights(path, {"w": torch.zeros(100)}, {})
    assert read_state(run).status == "done"
    path.write_bytes(path.read_bytes()[:-8])
    assert read_state(run).status == "missing"


@case("interruptions", "runs execute: an unreadable checkpoint is removed (said) and the run trained again")
def _(ctx):
    from medlib.runs.execute import execute_one

    plan_module = importlib.import_module("medlib.runs.plan")  # medlib.runs.plan is also a function's name
    run = _toy_run("corrupt")
    ckpt = run.checkpoint_path()
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"\x00" * 64)
    plan_module.ADAPTORS["toy"] = ToyPaper
    try:
        ctx.capsys.readouterr()
        outcome = execute_one(run, SMOKE)
    finally:
        del plan_module.ADAPTORS["toy"]
    assert outcome.trained and not ckpt.exists()
    assert f"{ckpt} is truncated or unreadable; removed" in ctx.capsys.readouterr().out


class ToyPaper:
    """A paper whose one run logs its training and writes its artifact (after ``hold`` is gone, if it exists)."""

    @staticmethod
    def execute(run, P):
        from medlib.io import save_weights

        folder = run.paths()[0].parent
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "trainings.log", "a") as log:
            log.write(f"{os.getpid()}\n")
        deadline = time.monotonic() + 120
        while (folder / "hold").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        save_weights(run.paths()[0], {"w": torch.zeros(1)}, {})


_TWO_PROCESSES = """
import sys, time
sys.path.insert(0, {tests!r})
import importlib
from test_hostile import ToyPaper, _toy_run
from medlib.profiles import SMOKE
from medlib.runs.execute import execute_one
importlib.import_module("medlib.runs.plan").ADAPTORS["toy"] = ToyPaper
outcome = execute_one(_toy_run("concurrent"), SMOKE)
print("TRAINED" if outcome.trained else "SKIPPED", flush=True)
"""


@case("concurrency", "two processes execute the same run on one home: trained once, the other waits and skips")
def _(ctx):
    from medlib.runs.spec import lock_path

    run = _toy_run("concurrent")
    folder = run.paths()[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hold").touch()  # the first process trains until the second is seen waiting
    code = _TWO_PROCESSES.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    log = folder / "trainings.log"
    while not log.exists() and time.monotonic() < deadline:  # the first holds the lock and trains
        time.sleep(0.01)
    second = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    waiting = second.stdout.readline()
    (folder / "hold").unlink()
    outs = [p.communicate(timeout=180)[0] for p in (first, second)]
    outs[1] = waiting + outs[1]
    assert len(log.read_text().split()) == 1, log.read_text()
    assert "TRAINED" in outs[0] and "SKIPPED" in outs[1], outs
    assert "another process is executing it; waiting" in outs[1] and "already done" in outs[1], outs[1]
    assert lock_path(run).exists()


# --- archives ---------------------------------------------------------------------------------------------------

def _archive_cases():
    from test_unpack import ABSOLUTE_TARGET, HOSTILE_TARS, _tar

    absolute = Path(ABSOLUTE_TARGET)  # where the "absolute" member would land

    def one(name, members):
        def check(ctx):
            seen = absolute.stat().st_mtime_ns if absolute.exists() else None  # another test's leftover?
            from medlib.data.download import DownloadError, extract_archive

            folder = ctx.file(f"tar-{name}") / "inner"
            folder.mkdir(parents=True)
            archive = _tar(folder / "frames.tar.gz", members)
            with pytest.raises(DownloadError) as info:
                extract_archive(archive, folder / "frames")
            assert "\n" not in str(info.value) and archive.name in str(info.value)
            assert sorted(p.name for p in folder.parent.rglob("*")) == ["frames.tar.gz", "inner"]
            assert (absolute.stat().st_mtime_ns if absolute.exists() else None) == seen, f"{absolute} written"
        return check

    for name, members in HOSTILE_TARS.items():
        case("archives", f"tar: {name}")(one(name, members))


_archive_cases()


@case("archives", "zip: a ../ member")
def _(ctx):
    from medlib.data.download import extract_archive

    folder = ctx.file("zip") / "inner"
    folder.mkdir(parents=True)
    archive = folder / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.txt", b"x")
    library_refuses(lambda: extract_archive(archive, folder / "a"), archive.name)
    assert not (folder.parent / "escaped.txt").exists() and not (folder / "a").exists()


@case("archives", 'a Zenodo listing whose files are not objects (files: ["a"]), from a 127.0.0.1 mirror')
def _(ctx):
    from test_download import ZENODO_API_PATH, FixtureServer

    from medlib.data.download import download_dataset

    server = FixtureServer()
    server.routes[ZENODO_API_PATH] = json.dumps({"id": 7741476, "files": ["a"]}).encode()
    root = ctx.file("zenodo")
    try:
        library_refuses(lambda: download_dataset("bladder-tissue", root, base_url=server.base, echo=None), "Zenodo")
    finally:
        server.close()


# --- dataset folders --------------------------------------------------------------------------------------------

@case("data", "a decompression-bomb PNG (15000² pixels in a few KB)")
def _(ctx):
    from medlib.data.base import load_rgb
    from medlib.data.cache import load_resized

    bomb = ctx.file("bomb.png")
    Image.new("1", (15000, 15000)).save(bomb)
    assert bomb.stat().st_size < 200_000
    library_refuses(lambda: load_rgb(bomb, "retina"), bomb.name)
    library_refuses(lambda: load_resized(bomb, 32), bomb.name)


@case("data", "an image symlinked to a file outside the dataset folder")
def _(ctx):
    import shutil

    from medlib.data import load_dataset

    root = ctx.file("retina-link")
    shutil.copytree(ctx.retina, root)
    victim = ctx.file("outside.png")
    Image.new("RGB", (8, 8)).save(victim)
    first = sorted(root.rglob("*.png"))[0]
    first.unlink()
    first.symlink_to(victim)
    library_refuses(lambda: load_dataset("retina", root), first.name)


def _derm7pt(ctx, name: str) -> Path:
    from medlib.data.synth import synthesize

    root = ctx.file(name)
    synthesize("derm7pt", root, seed=0, size="small")
    return root


def _edit_meta(root: Path, column: str, value: str) -> None:
    import pandas as pd

    path = next(root.rglob("meta/meta.csv"))
    meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    meta.loc[0, column] = value
    meta.to_csv(path, index=False)


@case("data", "derm7pt meta.csv naming an absolute image path")
def _(ctx):
    from medlib.data import load_dataset

    root = _derm7pt(ctx, "d7-abs")
    _edit_meta(root, "derm", "/etc/hostname")
    library_refuses(lambda: load_dataset("derm7pt", root), "/etc/hostname")


@case("data", "derm7pt meta.csv naming a ../ image path")
def _(ctx):
    from medlib.data import load_dataset

    root = _derm7pt(ctx, "d7-up")
    _edit_meta(root, "clinic", "../../outside.jpg")
    library_refuses(lambda: load_dataset("derm7pt", root), "../../outside.jpg")


@case("data", "derm7pt split index 99999999999999999999999")
def _(ctx):
    from medlib.data import load_dataset

    root = _derm7pt(ctx, "d7-split")
    split = next(root.rglob("meta/test_indexes.csv"))
    split.write_text(split.read_text().rstrip("\n") + "\n99999999999999999999999\n")
    library_refuses(lambda: load_dataset("derm7pt", root), "99999999999999999999999")


# --- arguments --------------------------------------------------------------------------------------------------

def _finetune_refused(ctx, *args, names: str):
    out = ctx.file("never.safetensors")
    ctx.refused("finetune", *args, "--pretrained", ctx.pre, "--out", out, names=names, out=out)


@case("arguments", "--out is a folder")
def _(ctx):
    ctx.refused("finetune", *ctx.data(), "--site", 1, "--out", ctx.tmp, names=str(ctx.tmp))


@case("arguments", "--out under /proc")
def _(ctx):
    ctx.refused("finetune", *ctx.data(), "--site", 1, "--out", "/proc/medlib/site.safetensors", names="/proc/medlib")


@case("arguments", "--out is a folder for merge (refused before loading anything)")
def _(ctx):
    ctx.refused("merge", "--pretrained", ctx.pre, "--models", ctx.pre, "--out", ctx.tmp, names=str(ctx.tmp))


for _seed in ("-1", "1e20", "100000000000000000000", "nan"):
    case("arguments", f"--seed {_seed}")(lambda ctx, s=_seed: _finetune_refused(
        ctx, "--dataset", "retina", "--root", ctx.retina, "--profile", "smoke", "--seed", s, names=s))


@case("arguments", "--profile bogus")
def _(ctx):
    _finetune_refused(ctx, "--dataset", "retina", "--root", ctx.retina, "--profile", "bogus", names="bogus")


@case("arguments", "--profile bogus for runs plan")
def _(ctx):
    ctx.refused("runs", "plan", "--profile", "bogus", names="bogus")


@case("arguments", "--seed -1 for runs plan")
def _(ctx):
    ctx.refused("runs", "plan", "--paper", "a", "--seed", "-1", names="-1")


@case("arguments", "--epochs 0 (an untrained 'site model')")
def _(ctx):
    _finetune_refused(ctx, *ctx.data("--epochs", 0), "--site", 1, names="--epochs")


@case("arguments", "finetune --dataset derm7pt (refused before θ_pre is built)")
def _(ctx):
    _finetune_refused(ctx, "--dataset", "derm7pt", "--root", ctx.retina, "--profile", "smoke", names="derm7pt")


@case("arguments", "--n-sites 0")
def _(ctx):
    _finetune_refused(ctx, *ctx.data("--n-sites", 0), names="--n-sites")


@case("arguments", "--site 9 of 4")
def _(ctx):
    _finetune_refused(ctx, *ctx.data("--site", 9), names="--site 9")


@case("arguments", "merge --lam nan")
def _(ctx):
    out = ctx.file("lam.safetensors")
    ctx.refused("merge", "--pretrained", ctx.pre, "--models", ctx.pre, "--lam", "nan", "--out", out, names="nan", out=out)


@case("arguments", "--checkpoint-every -1")
def _(ctx):
    _finetune_refused(ctx, *ctx.data("--checkpoint-every", -1, "--site", 1), names="-1")


# --- the catalogue ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


def test_catalogue(retina, pre, home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEDLIB_HOME", str(home))
    ctx = Ctx(tmp_path, retina, pre, capsys)
    failed, seconds = [], {}
    for kind, name, fn in CASES:
        started = time.perf_counter()
        try:
            fn(ctx)
        except BaseException as exc:  # noqa: BLE001 — a case that is not handled is reported, not fatal
            if isinstance(exc, KeyboardInterrupt):
                raise
            failed.append(f"[{kind}] {name}: {type(exc).__name__}: {str(exc)[:400]}")
        seconds[name] = time.perf_counter() - started
    kinds = sorted({kind for kind, _, _ in CASES})
    with capsys.disabled():
        print(f"\nhostile inputs: {len(CASES)} tried, {len(CASES) - len(failed)} handled ({', '.join(kinds)})")
        if VERBOSE:
            for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])[:15]:
                print(f"  {s:6.1f}s  {name}")
    assert not failed, "not handled:\n" + "\n".join(failed)


def test_the_catalogue_covers_every_kind_the_issue_names():
    assert {kind for kind, _, _ in CASES} >= {"files", "archives", "metadata", "arguments", "interruptions",
                                               "concurrency", "data"}


def test_readme_states_the_catalogues_count(repo_root):
    text = (repo_root / "README.md").read_text()
    section = text[text.index("## Reliability"):]
    assert f"{len(CASES)} hostile inputs" in section


@pytest.mark.slow
def test_two_medlib_runs_execute_on_one_home_train_each_run_once(tmp_path):
    """The commands users type, twice at once on one home (θ_pre, four sites and the full training of one table)."""
    env = {**os.environ, "MEDLIB_HOME": str(tmp_path / "home"), "MEDLIB_PROFILE": "smoke"}
    cmd = [sys.executable, "-m", "medlib", "runs", "execute", "--paper", "a", "--dataset", "retina", "--seed", "0",
           "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)]
    time.sleep(2.0)
    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err[-2000:]
        reports.append(json.loads(out[out.index("{"):]))
    trained = [r for report in reports for r in report["trained"]]
    assert len(trained) == len(set(trained)) == 6, reports  # each run trained by exactly one of them
    assert sorted(trained) == sorted(set(reports[0]["trained"] + reports[0]["skipped"]))
