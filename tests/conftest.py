import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Every test that reads the executed smoke book (the session fixture ``built_book``).
_BOOK_FILES = {"test_book.py", "test_browser.py", "test_nbval.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    # `make test` runs `pytest -n 2 --dist loadgroup`: each file goes to one worker (its module
    # fixtures are built once), and every test of the smoke book to the same worker (the session
    # fixture builds the book once). Without xdist the marker does nothing.
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = "book" if item.path.name in _BOOK_FILES else item.path.name
            item.add_marker(pytest.mark.xdist_group(group))


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
