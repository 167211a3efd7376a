import json
import shutil

import nbformat
import pytest

from medlib.book import toc_notebooks
from notebook_rules import install_cell_problems, problems, repository_url

from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_the_toc_lists_exactly_them():
    assert NOTEBOOKS, "no notebooks found"
    listed = {p.resolve() for p in toc_notebooks(REPO)}
    assert listed == {p.resolve() for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_conventions(path):
    assert problems(path, repository_url(REPO)) == []


@pytest.fixture
def clean_copy(tmp_path):
    dst = tmp_path / "00_environment.ipynb"
    shutil.copy(REPO / "notebooks" / "00_environment.ipynb", dst)
    assert problems(dst, repository_url(REPO)) == []
    return dst


def test_committed_outputs_are_caught(clean_copy):
    nb = nbformat.read(clean_copy, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    cell.execution_count = 1
    nbformat.write(nb, clean_copy)
    assert any("outputs" in p for p in problems(clean_copy, repository_url(REPO)))


def test_missing_parameters_cell_is_caught(clean_copy):
    nb = json.loads(clean_copy.read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    clean_copy.write_text(json.dumps(nb))
    assert any("parameters" in p for p in problems(clean_copy, repository_url(REPO)))


def test_glue_calls_in_the_readers_view_are_caught(clean_copy):
    nb = nbformat.read(clean_copy, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('glue("a", 1)\nglue("b", 2)'))
    nbformat.write(nb, clean_copy)
    assert any("glue calls" in p for p in problems(clean_copy, repository_url(REPO)))
    nb.cells[-1].metadata["tags"] = ["remove-input"]
    nbformat.write(nb, clean_copy)
    assert problems(clean_copy, repository_url(REPO)) == []


def test_install_cell_that_touches_torch_is_caught(clean_copy):
    nb = nbformat.read(clean_copy, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.source += '\n    %pip install torch==2.0'
    nbformat.write(nb, clean_copy)
    assert any("torch" in p for p in problems(clean_copy, repository_url(REPO)))


def test_the_colab_install_cell_passes_the_rule():
    from medlib.colab import install_cell_source

    url = repository_url(REPO)
    assert install_cell_problems(install_cell_source(url), url) == []


@pytest.mark.parametrize("fault, expected", [
    # pip's errors hidden in a subprocess instead of the %pip magic
    (lambda s: s.replace("%pip install -q", "subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', ") + "])",
     "%pip"),
    (lambda s: s.replace("git+https://github.com/", "git+https://gitlab.com/"), "the URL of _config.yml"),
    (lambda s: "\n".join(l for l in s.splitlines() if "google.colab" not in l).replace("ON_COLAB and ", ""),
     "only on Colab"),
    (lambda s: s.replace("%pip install", "# %pip install"), "%pip install"),
])
def test_a_broken_install_cell_is_caught(fault, expected):
    from medlib.colab import install_cell_source

    url = repository_url(REPO)
    found = install_cell_problems(fault(install_cell_source(url)), url)
    assert any(expected in p for p in found), found
