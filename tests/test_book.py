"""Execute every notebook (smoke profile) and render the book once; check what a reader sees."""

import re
import shutil

import nbformat
import pytest

from medlib.book import NotebookFailed, execute_notebooks, toc_files, toc_notebooks

from conftest import REPO

pytestmark = pytest.mark.slow
NOTEBOOKS = [p.relative_to(REPO) for p in toc_notebooks(REPO)]


@pytest.mark.parametrize("rel", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executed_cleanly(built_book, rel):
    build, _ = built_book
    nb = nbformat.read(build / "staging" / rel, as_version=4)
    assert nb.metadata["papermill"]["exception"] is None
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code if c.source.strip())
    errors = [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    # the provenance banner is the first thing a reader sees below the parameters
    banner = [o for c in code for o in c.get("outputs", []) if "Profile **smoke**" in str(o.get("data", {}))]
    assert banner, f"{rel} shows no provenance banner"


def test_every_toc_page_is_rendered(built_book):
    _, html = built_book
    assert (html / "index.html").is_file()
    for page in toc_files(REPO):
        rel = page.relative_to(REPO).with_suffix(".html")
        assert (html / rel).is_file(), f"missing {rel}"


def test_executed_outputs_and_glue_appear_in_html(built_book):
    _, html = built_book
    page = (html / "notebooks" / "00_environment.html").read_text()
    assert "CPU cores" in page and "Profile <strong>smoke</strong>" in page
    # the glued device name is rendered inside the prose sentence
    assert re.search(r"executed on .*cpu", page, re.S)
    assert "colab.research.google.com" in page


def test_a_failing_cell_names_notebook_and_cell(tmp_path):
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: notebooks/01_broken\n")
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "auto"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('planted fault')")]
    nbformat.write(nb, tmp_path / "notebooks" / "01_broken.ipynb")
    with pytest.raises(NotebookFailed) as info:
        execute_notebooks(tmp_path, tmp_path / "_build" / "staging", "smoke")
    message = str(info.value)
    assert "01_broken.ipynb" in message and "planted fault" in message
    # papermill inserts the injected-parameters cell, so the raising cell is the 4th (index 3)
    assert re.search(r"cell 3\b", message), message


def test_partial_build_toc_keeps_prose_and_executed_notebooks_only(tmp_path):
    from medlib.book import prune_toc

    shutil.copy(REPO / "_toc.yml", tmp_path / "_toc.yml")
    for page in toc_files(REPO):
        rel = page.relative_to(REPO)
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    prune_toc(tmp_path / "_toc.yml", {"notebooks/00_environment"})
    kept = {p.relative_to(tmp_path).as_posix() for p in toc_files(tmp_path)}
    assert "notebooks/00_environment.ipynb" in kept and "book/intro.md" in kept and "book/part_a.md" in kept
    assert not any(k.startswith("notebooks/") and k != "notebooks/00_environment.ipynb" for k in kept)
