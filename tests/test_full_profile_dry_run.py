"""The `full` profile cannot run here, so it must not rot: drive its code paths on CPU.

Paper A's full profile as a dry run (``MEDLIB_DRY_RUN=1``): timm ResNet50 (random weights
standing in for ImageNet's, passed as a local safetensors file exactly as an offline user
would), 224 px, the paper's lr and seed, batches of 4 and at most ``max_steps`` of them per
epoch and per evaluation — the hospital workflow end to end on a tiny dataset written in
Retina's real layout.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import timm
from PIL import Image
from safetensors.torch import save_file

from medlib.profiles import FULL, dry_run


@pytest.fixture(scope="module")
def tiny_retina(tmp_path_factory):
    root = tmp_path_factory.mktemp("retina_full")
    rng = np.random.default_rng(0)
    names = {"1_normal": "NL", "2_cataract": "cataract", "2_glaucoma": "Glaucoma", "3_retina_disease": "Retina"}
    for folder, prefix in names.items():
        (root / "dataset" / folder).mkdir(parents=True)
        for i in range(1, 6):
            pixels = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "dataset" / folder / f"{prefix}_{i:03d}.png")
    return root


def medlib(*args):
    proc = subprocess.run([sys.executable, "-m", "medlib", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "MEDLIB_DRY_RUN": "1"})
    assert proc.returncode == 0, f"medlib {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def test_paper_a_full_profile_workflow_on_cpu(tiny_retina, tmp_path):
    assert (FULL.paper_a.arch, FULL.paper_a.image_size) == ("resnet50", 224)
    backbone = tmp_path / "resnet50.safetensors"
    save_file(timm.create_model("resnet50", pretrained=False).state_dict(), str(backbone))
    data = ["--dataset", "retina", "--root", tiny_retina, "--profile", "full", "--n-sites", 2]
    pre = tmp_path / "pre.safetensors"
    medlib("pretrained", *data, "--pretrained-path", backbone, "--out", pre)
    sites = []
    for k in (1, 2):
        out = tmp_path / f"site{k}.safetensors"
        log = medlib("finetune", *data, "--site", k, "--epochs", 1, "--pretrained", pre, "--out", out)
        assert "profile full (dry run)" in log.stdout
        sites.append(out)
    merged = tmp_path / "merged.safetensors"
    medlib("merge", "--pretrained", pre, "--models", *sites, "--lam", FULL.paper_a.lam, "--out", merged)
    restored = tmp_path / "restored.safetensors"
    medlib("restore-bn", "--model", merged, *data, "--method", "finetune-epoch", "--out", restored)
    report = json.loads(medlib("evaluate", "--model", restored, *data, "--json").stdout)
    assert report["profile"] == "full" and report["n"] >= 2
    assert 0.0 <= report["accuracy"] <= 1.0
    # 20 images, but the evaluation stops after max_steps batches of the dry run's batch size
    P = dry_run(FULL)
    everything = json.loads(medlib("evaluate", "--model", restored, *data, "--split", "all", "--json").stdout)
    assert everything["n"] == P.max_steps * P.paper_a.batch_size == 2
