import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _smoke_profile(monkeypatch):
    # Tests never pick the full profile by accident on a CUDA machine.
    monkeypatch.setenv("MEDLIB_PROFILE", os.environ.get("MEDLIB_TEST_PROFILE", "smoke"))


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """The smoke book, executed and rendered once per test session: (build folder, html folder)."""
    from medlib.book import build_book

    build = tmp_path_factory.mktemp("book") / "_build"
    index = build_book(REPO, "smoke", build_dir=build)
    return build, index.parent


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # In-process tests use tiny models: on small shared CPU machines OpenMP threads spin-wait
    # under contention (a 0.1 s step measured 20 s with 2 threads and a busy neighbour).
    # Subprocesses (CLI runs, notebook kernels) keep torch's default.
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def retina(tmp_path_factory):
    """A small synthetic Retina stand-in in the real layout (the hospital CLI's tests)."""
    from medlib.data.synth import synthesize

    root = tmp_path_factory.mktemp("retina")
    synthesize("retina", root, seed=0, size="small")
    return root


@pytest.fixture(scope="module")
def pre(retina, tmp_path_factory):
    """θ_pre as ``medlib pretrained`` writes it (smoke). The caller's MEDLIB_HOME (make test's) holds the
    synthetic pretrained backbone: built once, under its lock, for every test file and the book alike."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("models") / "pre.safetensors"
    proc = subprocess.run([sys.executable, "-m", "medlib", "pretrained", "--dataset", "retina", "--root", str(retina),
                           "--profile", "smoke", "--seed", "0", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, f"medlib pretrained failed:\n{proc.stdout}\n{proc.stderr}"
    return out
