"""Paper A's command-line workflow on a synthetic Retina stand-in: the hospital round trip."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file



def medlib(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "medlib", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"medlib {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def data_args(retina):
    return ["--dataset", "retina", "--root", retina, "--profile", "smoke", "--seed", 0]


def test_round_trip_finetune_merge_restore_evaluate(retina, pre, tmp_path):
    sites = []
    for k in range(1, 5):
        out = tmp_path / f"site{k}.safetensors"
        medlib("finetune", *data_args(retina), "--site", k, "--epochs", 1, "--pretrained", pre, "--out", out)
        sites.append(out)
    merged = tmp_path / "merged.safetensors"
    medlib("merge", "--pretrained", pre, "--models", *sites, "--method", "data-vector", "--lam", 0.25, "--out", merged)
    restored = tmp_path / "restored.safetensors"
    medlib("restore-bn", "--model", merged, *data_args(retina), "--method", "site-stats", "--out", restored)
    report = json.loads(medlib("evaluate", "--model", restored, *data_args(retina), "--json").stdout)
    assert report["role"] == "restored" and report["split"] == "test"
    assert 0.0 <= report["accuracy"] <= 1.0 and report["n"] > 0
    # λ = 1/N on four sites: the merged vector parameters are the sites' mean
    states = [load_file(str(p)) for p in sites]
    merged_state = load_file(str(merged))
    key = "backbone.conv1.weight" if "backbone.conv1.weight" in merged_state else next(k for k in merged_state if k.endswith("weight"))
    torch.testing.assert_close(merged_state[key], sum(s[key] for s in states) / 4, rtol=0, atol=1e-6)


def test_pickles_and_other_architectures_are_refused(pre, tmp_path):
    pickled = tmp_path / "site.pt"
    torch.save({"w": torch.zeros(1)}, pickled)
    proc = medlib("merge", "--pretrained", pre, "--models", pickled, "--out", tmp_path / "m.safetensors", check=False)
    assert proc.returncode == 2 and "pickle" in proc.stderr and "Traceback" not in proc.stderr

    from medlib.models import create_classifier, save_classifier

    other = tmp_path / "other.safetensors"
    save_classifier(other, create_classifier("test_efficientnet", 4), {"classes": ["a", "b", "c", "d"]})
    proc = medlib("merge", "--pretrained", pre, "--models", other, "--out", tmp_path / "m.safetensors", check=False)
    assert proc.returncode == 2 and "test_efficientnet" in proc.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_killed_finetune_resumes_to_identical_weights(retina, pre, tmp_path):
    # checkpoints after every epoch (the default is every 10 minutes)
    args = ["finetune", *data_args(retina), "--site", 1, "--epochs", 8, "--pretrained", pre, "--checkpoint-every", 0]
    reference = tmp_path / "uninterrupted.safetensors"
    medlib(*args, "--out", reference)

    out = tmp_path / "killed.safetensors"
    ckpt = tmp_path / "killed.safetensors.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "medlib", *map(str, args), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # at an arbitrary moment after the first checkpoint
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert ckpt.exists() and not out.exists()

    done = torch.load(ckpt, weights_only=True)["epoch"]
    log = medlib(*args, "--out", out, "--resume").stdout
    assert f"resuming from checkpoint {ckpt} after epoch {done}/8" in log
    a, b = load_file(str(reference)), load_file(str(out))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_a_checkpoint_says_it_starts_from_scratch(retina, pre, tmp_path):
    out = tmp_path / "site.safetensors"
    log = medlib("finetune", *data_args(retina), "--site", 2, "--epochs", 1, "--pretrained", pre, "--out", out,
                 "--resume").stdout
    assert f"no checkpoint at {out}.ckpt: training from scratch" in log and out.exists()


def four_sites(pre, tmp_path):
    """Four site models: θ_pre plus a known change per site (no training needed to test merging)."""
    from medlib.models import load_classifier, save_classifier

    paths = []
    for k in range(4):
        model, meta = load_classifier(pre)
        g = torch.Generator().manual_seed(k)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.01)
        paths.append(tmp_path / f"site{k}.safetensors")
        save_classifier(paths[-1], model, {**meta, "role": "site"})
    return paths


def test_merge_methods_ties_and_dare(pre, tmp_path):
    from medlib.models import load_classifier
    from medlib.vectors import merge

    sites = four_sites(pre, tmp_path)
    pre_model, _ = load_classifier(pre)
    models = [load_classifier(p)[0] for p in sites]
    for method, extra, kwargs in (("ties", ["--density", 0.2, "--lam", 1.0], {"density": 0.2, "lam": 1.0}),
                                  ("dare", ["--drop", 0.9, "--seed", 3, "--lam", 0.5], {"drop": 0.9, "seed": 3, "lam": 0.5})):
        out = tmp_path / f"{method}.safetensors"
        log = medlib("merge", "--pretrained", pre, "--models", *sites, "--method", method, *extra, "--out", out).stdout
        assert f"{method} merge of 4 models" in log
        expected = merge(pre_model, models, method, **kwargs).state_dict()
        got = load_file(str(out))
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value.cpu(), rtol=0, atol=1e-6, msg=key)
    dropped = load_file(str(tmp_path / "dare.safetensors"))
    assert any(not torch.equal(dropped[k], load_file(str(tmp_path / "ties.safetensors"))[k]) for k in dropped)
    proc = medlib("merge", "--pretrained", pre, "--models", *sites, "--method", "data-vector", "--density", 0.2,
                  "--out", tmp_path / "bad.safetensors", check=False)
    assert proc.returncode == 2 and "density" in proc.stderr and "Traceback" not in proc.stderr
