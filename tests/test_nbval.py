"""nbval over every notebook, each in a fresh kernel as a Colab user opens it.

The kernels run in a Colab-like environment: ``google.colab`` is importable (and imported at
start-up, as on Colab) with a ``drive.mount`` that creates ``<mount point>/MyDrive`` (a Drive
stand-in), ``myst_nb`` is *not* importable (Colab has no Jupyter Book: glued figures and numbers
must still show), ``MEDLIB_PROFILE=smoke``. The kernels reuse the ``MEDLIB_HOME`` the book build
trained into (the ``built_book`` fixture runs first), so nothing is trained twice.

One ``pytest --nbval-lax --nbval-current-env`` run covers every toc notebook (nbval starts a fresh
kernel per notebook); a small plugin records each cell's outputs, so the tests can check that every
figure the book glues is also shown on Colab.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from medlib.book import toc_notebooks

pytestmark = pytest.mark.slow

NOTEBOOKS = [p.relative_to(REPO).as_posix() for p in toc_notebooks(REPO)]

GOOGLE_COLAB = '''\
"""Stand-in for Colab's google.colab package (tests/test_nbval.py): only what medlib uses."""
from google.colab import drive  # noqa: F401
'''
GOOGLE_COLAB_DRIVE = '''\
"""Stand-in for google.colab.drive: mounting creates <mountpoint>/MyDrive, a local folder."""
import os


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms=24 * 3600 * 1000):
    pass
'''
# Imported by every Python started with this folder on PYTHONPATH (the nbval kernels included).
SITECUSTOMIZE = '''\
"""A Colab-like interpreter (tests/test_nbval.py): no Jupyter Book, google.colab imported at start."""
import importlib.abc
import sys

NOT_ON_COLAB = ("myst_nb",)


class _NotOnColab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in NOT_ON_COLAB:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed on Colab)", name=name)
        return None


sys.meta_path.insert(0, _NotOnColab())
import google.colab  # noqa: E402,F401  (Colab's kernels import it at start-up)
'''
# A pytest plugin for the nbval run: every cell's outcome and the MIME types of its outputs.
RECORDER = '''\
import json
import os

import pytest

RECORD = os.environ["NBVAL_RECORD"]


def _write(entry):
    with open(RECORD, "a") as f:
        f.write(json.dumps(entry) + "\\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    outputs = getattr(item, "test_outputs", None) or []
    _write({"nodeid": item.nodeid, "outputs": [
        {"type": o.get("output_type"), "mimes": sorted(o.get("data", {}))} for o in outputs]})


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _write({"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
                "longrepr": str(report.longrepr)[-3000:] if report.failed else ""})
'''


def colab_like_environment(root: Path) -> dict[str, str]:
    """Write the Colab stand-ins under ``root``; return the environment for the nbval run."""
    site = root / "site"
    (site / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: google is a namespace
    (site / "google" / "colab" / "__init__.py").write_text(GOOGLE_COLAB)
    (site / "google" / "colab" / "drive.py").write_text(GOOGLE_COLAB_DRIVE)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (site / "nbval_recorder.py").write_text(RECORDER)
    env = {k: v for k, v in os.environ.items() if k not in ("MEDLIB_DRY_RUN", "MPLBACKEND", "PYTEST_ADDOPTS")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        MEDLIB_PROFILE="smoke",
        NBVAL_RECORD=str(root / "record.jsonl"),
        # nothing may leave the machine: a pip install from the repository URL fails at once
        PIP_NO_INDEX="1",
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0=f"url.file://{root}/offline/.insteadOf",
        GIT_CONFIG_VALUE_0="https://",
        HOME=str(root / "home"),  # a fresh user: nothing in ~ from earlier sessions
        MEDLIB_HOME=str(Path(os.environ.get("MEDLIB_HOME", Path.home() / ".cache" / "medlib")).expanduser()),
    )
    return env


def test_the_environment_is_colab_like(tmp_path):
    env = colab_like_environment(tmp_path)
    probe = textwrap.dedent('''
        import importlib.util, os, sys
        from google.colab import drive
        drive.mount(sys.argv[1])
        print("google.colab" in sys.modules, os.path.isdir(os.path.join(sys.argv[1], "MyDrive")))
        try:
            import myst_nb
        except ImportError as exc:
            print("no myst_nb:", exc)
        import medlib.notebook
    ''')
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "content" / "drive")], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == ["True True", "no myst_nb: No module named 'myst_nb' (not installed on Colab)"]


@pytest.fixture(scope="module")
def nbval_run(built_book, tmp_path_factory):
    """``pytest --nbval-lax`` over every toc notebook in the Colab-like environment."""
    root = tmp_path_factory.mktemp("colab")
    env = colab_like_environment(root)
    (root / "home").mkdir()
    # one notebook per xdist worker at a time (loadscope keeps a notebook's cells in order, in one kernel)
    workers = max(1, min(len(NOTEBOOKS), os.cpu_count() or 1))
    env["OMP_NUM_THREADS"] = "1"  # the workers share the cores; what they run is cached
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=900",
           "-n", str(workers), "--dist", "loadscope",
           "-p", "nbval_recorder", "-p", "no:cacheprovider", "-o", "addopts=", "-q", *NOTEBOOKS]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    record = [json.loads(line) for line in (root / "record.jsonl").read_text().splitlines()] \
        if (root / "record.jsonl").is_file() else []
    return proc, record


def test_nbval_passes_on_every_notebook(nbval_run):
    proc, _ = nbval_run
    assert proc.returncode == 0, "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])


def _of(record: list[dict], notebook: str) -> list[dict]:
    return [e for e in record if e["nodeid"].startswith(notebook + "::")]


def _glued_figures(nb) -> set[str]:
    return {o.metadata["scrapbook"]["name"] for c in nb.cells for o in c.get("outputs", [])
            if "image/png" in o.get("data", {}) and "scrapbook" in o.get("metadata", {})}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: Path(p).name)
def test_notebook_runs_alone_in_a_colab_kernel_and_shows_its_figures(nbval_run, built_book, notebook):
    _, record = nbval_run
    entries = _of(record, notebook)
    cells = [e for e in entries if "outputs" in e]
    code_cells = [c for c in nbformat.read(REPO / notebook, as_version=4).cells if c.cell_type == "code"]
    assert len(cells) == len(code_cells), f"nbval ran {len(cells)} of {len(code_cells)} code cells of {notebook}"
    failed = [e for e in entries if e.get("outcome") == "failed"]
    assert failed == [], f"{notebook}: {failed[0]['nodeid']}\n{failed[0]['longrepr']}"
    errors = [o for c in cells for o in c["outputs"] if o["type"] == "error"]
    assert errors == []
    shown = sum("image/png" in o["mimes"] for c in cells for o in c["outputs"])
    build, _ = built_book
    glued = _glued_figures(nbformat.read(build / "staging" / notebook, as_version=4))
    # without myst_nb a glued figure is only seen if the notebook shows it: each must appear
    assert shown >= len(glued), f"{notebook} glues {len(glued)} figures in the book but shows {shown} on Colab: {sorted(glued)}"
