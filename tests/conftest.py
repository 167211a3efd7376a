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
