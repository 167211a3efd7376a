"""medlib.colab: the notebooks' install cell and the Drive setup, run the way Colab runs them.

Colab itself cannot run here; its one Colab-only module, ``google.colab``, is stood in by a tiny
package whose ``drive.mount`` creates ``MyDrive`` under the mount point (what the real one makes
visible). Everything else — IPython executing the cell, ``%pip``, medlib's paths — is real.
"""

import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from medlib import __version__, colab
from notebook_rules import MAX_INSTALL_LINES, install_cell_problems, problems, repository_url

REPO = Path(__file__).resolve().parents[1]
URL = "https://github.com/medlib-book/medlib-book"


@pytest.fixture
def fresh_env(monkeypatch):
    for var in ("MEDLIB_HOME", "MEDLIB_DATA_HOME", "MEDLIB_DATA_DERM7PT"):
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
    # setup() writes os.environ directly (that is its job): undo it
    for var in ("MEDLIB_HOME", "MEDLIB_DATA_HOME", "MEDLIB_DATA_DERM7PT"):
        os.environ.pop(var, None)


@pytest.fixture
def colab_kernel(tmp_path, monkeypatch):
    """``google.colab`` imported (as Colab's kernel does), with a ``drive.mount`` that makes ``<mount>/MyDrive`` appear."""
    pkg = tmp_path / "standin" / "google" / "colab"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "drive.py").write_text(
        "import os\n\ndef mount(mountpoint, force_remount=False):\n"
        "    os.makedirs(os.path.join(mountpoint, 'MyDrive'), exist_ok=True)\n"
        "    print('Mounted at', mountpoint)\n")
    before = {k for k in sys.modules if k == "google" or k.startswith("google.")}
    monkeypatch.syspath_prepend(str(tmp_path / "standin"))
    importlib.import_module("google.colab")
    yield tmp_path
    for k in [k for k in sys.modules if (k == "google" or k.startswith("google.")) and k not in before]:
        del sys.modules[k]


@pytest.fixture
def shell():
    sh = InteractiveShell.instance()
    yield sh
    InteractiveShell.clear_instance()


def test_install_cell_is_valid_ipython_and_follows_the_notebook_rules(tmp_path):
    source = colab.install_cell_source(URL + "/")
    assert f'%pip install -q "medlib @ git+{URL}@v{__version__}"' in source  # %pip: pip's errors show in the cell
    compile(TransformerManager().transform_cell(source), "install-cell", "exec")
    nb = nbformat.read(REPO / "notebooks" / "00_environment.ipynb", as_version=4)
    old = next(c for c in nb.cells if c.cell_type == "code")  # an install cell of the old kind
    old.source = 'import subprocess, sys\nsubprocess.run([sys.executable, "-m", "pip", "install", "medlib"])'
    path = tmp_path / "00_environment.ipynb"
    nbformat.write(nb, str(path))
    assert colab.apply_install_cell([path], repository_url(REPO)) == [path]
    assert colab.apply_install_cell([path], repository_url(REPO)) == []  # idempotent
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert first.source == colab.install_cell_source(repository_url(REPO))
    assert "hide-cell" in first.metadata.get("tags", [])  # the cell keeps its metadata
    assert problems(path, repository_url(REPO)) == []


def test_repository_url_is_read_from_config_yml():
    assert colab.repository_url(REPO / "_config.yml") == repository_url(REPO)
    with pytest.raises(Exception, match="plain http"):
        colab.install_cell_source('https://x"; import os')


def test_install_cell_does_nothing_outside_colab(shell, fresh_env):
    assert not colab.on_colab()
    with capture_output() as cap:
        result = shell.run_cell(colab.install_cell_source(URL))
    assert result.success and cap.stdout == "" and "medlib.colab" not in shell.user_ns


def test_install_cell_on_colab_with_medlib_installed_runs_setup_only(shell, colab_kernel, fresh_env):
    fresh_env.setenv("MEDLIB_HOME", str(colab_kernel / "home"))  # e.g. a test harness's shared home
    with capture_output() as cap:
        result = shell.run_cell(colab.install_cell_source(URL))
    assert result.success and "MEDLIB_HOME is already set" in cap.stdout
    assert not (colab_kernel / "content").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("git") is None, reason="pip needs git for a git+ URL")
def test_unreachable_repository_shows_pips_error_and_stops(shell, colab_kernel, fresh_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "medlib", None)  # as on a fresh Colab VM: medlib not importable
    url = f"http://127.0.0.1:{_closed_port()}/medlib-book"
    started = time.perf_counter()
    with capture_output() as cap:
        result = shell.run_cell(colab.install_cell_source(url))
    assert "ERROR" in cap.stdout + cap.stderr and "127.0.0.1" in cap.stdout + cap.stderr  # pip's own error, in the cell
    assert isinstance(result.error_in_exec, ModuleNotFoundError) and "medlib" in str(result.error_in_exec)
    assert time.perf_counter() - started < 120


def test_every_notebook_opens_with_the_same_short_pinned_install_cell():
    url = repository_url(REPO)
    want = colab.install_cell_source(url)
    assert len(want.splitlines()) <= MAX_INSTALL_LINES and f"git+{url}@v{__version__}\"" in want
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert first.source == want, f"{path.name}: run python -m medlib.colab --apply-install-cell notebooks/*.ipynb"


def test_the_pinned_release_is_pyprojects_version():
    # the tag the install cell names is v<pyproject's version>: bumping one without the other breaks here
    declared = re.search(r'^version = "([^"]+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert __version__ == declared
    assert f"@v{declared}\"" in colab.install_cell_source(URL)


@pytest.mark.parametrize("fault, expected", [
    (lambda s: s.replace("@v", "@main#v"), "the release tag"),  # a branch: the page and its code drift apart
    (lambda s: s.replace(f"@v{__version__}", ""), "the release tag"),  # unpinned
    (lambda s: s + "\nprint('one line too many')", "move the rest into medlib.colab"),
])
def test_an_unpinned_or_long_install_cell_is_caught(fault, expected):
    url = repository_url(REPO)
    assert install_cell_problems(colab.install_cell_source(url), url) == []
    found = install_cell_problems(fault(colab.install_cell_source(url)), url)
    assert any(expected in p for p in found), found


def test_setup_outside_colab_changes_nothing(fresh_env, capsys):
    out = colab.setup()
    assert out.on_colab is False and "Not running on Colab" in capsys.readouterr().out
    assert "MEDLIB_HOME" not in os.environ and "MEDLIB_DATA_HOME" not in os.environ


def test_setup_on_colab_keeps_artifacts_on_drive_and_data_local(colab_kernel, fresh_env, capsys):
    from medlib import paths

    mount, local = colab_kernel / "content" / "drive", colab_kernel / "content" / "medlib-local"
    (mount / "MyDrive" / "medlib" / "derm7pt").mkdir(parents=True)  # unpacked there in an earlier session
    out = colab.setup(mount_point=mount, local=local)
    drive_home = mount / "MyDrive" / "medlib"
    assert out == colab.ColabSetup(True, drive_home, local, True, drive_home / "derm7pt")
    assert os.environ["MEDLIB_HOME"] == str(drive_home) and os.environ["MEDLIB_DATA_HOME"] == str(local)
    assert paths.artifacts_dir() == drive_home.resolve() / "artifacts"
    assert paths.results_dir() == drive_home.resolve() / "results"
    assert paths.data_root("derm7pt", "real") == (drive_home / "derm7pt").resolve()
    said = capsys.readouterr().out
    assert str(drive_home) in said and "kept across sessions" in said


def test_setup_on_colab_puts_data_and_caches_on_local_disk(colab_kernel, fresh_env):
    from medlib import paths

    mount, local = colab_kernel / "drive", colab_kernel / "local"
    colab.setup(mount_point=mount, local=local, verbose=False)
    assert paths.data_root("retina", "real").is_relative_to(local.resolve())
    assert paths.cache_dir().is_relative_to(local.resolve())
    assert paths.artifacts_dir().is_relative_to(mount.resolve())


def test_setup_falls_back_to_the_vm_when_drive_cannot_be_mounted(colab_kernel, fresh_env, capsys):
    (colab_kernel / "standin" / "google" / "colab" / "drive.py").write_text(
        "def mount(mountpoint, force_remount=False):\n    raise ValueError('authorization declined')\n")
    local = colab_kernel / "local"
    out = colab.setup(mount_point=colab_kernel / "drive", local=local)
    assert out.drive is False and out.home == local / "home"
    assert "could not be mounted" in capsys.readouterr().out


def test_gpu_check_cpu_smoke_runs_the_same_code_quickly(tmp_path):
    """``benches/gpu_check.py --cpu-smoke``: the bench's code on CPU with tiny sizes, so it cannot rot.

    The dry-run part calls the experiments' public functions, which the book's own dry run
    (``medlib book --profile full --dry-run``) executes; here it is skipped to stay under a minute.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDLIB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    env.pop("MEDLIB_PROFILE", None)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / "benches" / "gpu_check.py"), "--cpu-smoke", "--skip-dry-run"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "img/s" in out and "images/s" in out and "peak memory" in out and "outside compute" in out
    assert "gpu-check: passed" in out
    assert time.perf_counter() - started < 180  # ~25 s on an idle 2-core machine


def test_gpu_check_without_cuda_says_so(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDLIB_HOME": str(tmp_path / "home"), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(REPO / "benches" / "gpu_check.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    assert "no CUDA device" in proc.stdout
