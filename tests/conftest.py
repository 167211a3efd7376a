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
