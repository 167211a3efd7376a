"""Execute every notebook (smoke profile) and render the book once; check what a reader sees."""

import html as html_lib
import re
import shutil

import nbformat
import pytest

from medlib.book import (DRY_RUN_BANNER, FOLD_LOG_LINES, NotebookFailed, build_book, execute_notebooks, mark_dry_run,
                         present_for_readers, toc_files, toc_notebooks)
from medlib.errors import MedlibError

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


# ---------------------------------------------------------------- what readers see of the machinery

def test_no_rendered_page_shows_a_parameters_cell(built_book):
    build, html = built_book
    for rel in NOTEBOOKS:
        staged = nbformat.read(build / "staging" / rel, as_version=4)
        machinery = [c for c in staged.cells if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
        assert len(machinery) == 2, f"{rel}: expected the parameters and the injected-parameters cell"
        page = (html / rel.with_suffix(".html")).read_text()
        assert "tag_parameters" not in page and "tag_injected-parameters" not in page, rel
        for cell in machinery:  # neither cell's code appears on the page
            first = cell.source.strip().splitlines()[-1]
            assert html_lib.escape(first) not in page and first not in page, f"{rel} shows {first!r}"


def test_long_logs_are_folded_on_rendered_pages(built_book):
    build, _ = built_book
    for rel in NOTEBOOKS:
        staged = nbformat.read(build / "staging" / rel, as_version=4)
        for cell in staged.cells:
            for output in cell.get("outputs", []):
                if output.output_type == "stream" and output.text.count("\n") > FOLD_LOG_LINES + 1:
                    assert "hide-output" in cell.metadata.get("tags", []), f"{rel}: a {output.text.count(chr(10))}-line log is shown unfolded"


def test_the_html_is_ready_for_github_pages(built_book):
    _, html = built_book
    assert (html / ".nojekyll").is_file()  # else Jekyll drops _static/ and _vendor/


def _code(source: str, tags=(), outputs=()):
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    cell.outputs = list(outputs)
    cell.execution_count = 1
    return cell


def _stream(lines: int, width: int = 10, name: str = "stdout"):
    return nbformat.v4.new_output("stream", name=name, text="".join(f"{i:0{width}d}\n" for i in range(lines)))


def test_present_for_readers_hides_machinery_and_folds_long_logs(tmp_path):
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        _code('profile = "auto"', tags=["parameters"]),
        _code('profile = "smoke"', tags=["injected-parameters"]),
        _code("train()", outputs=[_stream(FOLD_LOG_LINES + 1)]),  # a long log alone: the cell's output folds
        _code("short()", tags=["hide-input"], outputs=[_stream(FOLD_LOG_LINES)]),  # at the limit: shown
        # a log in two chunks that only together exceed the limit, beside a figure: the log folds alone
        _code("plot()", outputs=[_stream(20), _stream(20), figure]),
        # a progress bar redrawn with \r is one line per step, as in a terminal
        _code("bar()", outputs=[nbformat.v4.new_output("stream", name="stdout", text="\r".join(["10%", "50%", "100%"]) + "\n")]),
    ]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    present_for_readers(path)
    cells = nbformat.read(path, as_version=4).cells
    tags = [c.metadata.get("tags", []) for c in cells]
    assert tags[1] == ["parameters", "remove-cell"] and tags[2] == ["injected-parameters", "remove-cell"]
    assert tags[3] == ["hide-output"]
    assert tags[4] == ["hide-input"] and cells[4].outputs[0].text.count("\n") == FOLD_LOG_LINES
    assert tags[5] == []
    folded, shown = cells[5].outputs
    assert folded.output_type == "display_data" and shown == figure
    fold = folded.data["text/html"]
    assert fold.startswith('<details class="medlib-log"><summary>show the log (40 lines, stdout)</summary><pre>')
    assert fold.count("\n") == 39 and "0000000019\n0000000000" in fold  # both chunks, in order
    assert cells[6].outputs[0].text == "10%\r50%\r100%\n" and tags[6] == []
    present_for_readers(path)  # idempotent: tags are not added twice
    assert [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells] == tags


def test_a_folded_log_is_html_escaped(tmp_path):
    log = nbformat.v4.new_output("stream", name="stderr", text="<script>alert(1)</script> & more\n" * 30)
    nb = nbformat.v4.new_notebook()
    nb.cells = [_code("x", outputs=[log, nbformat.v4.new_output("display_data", data={"text/plain": "t"})])]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    present_for_readers(path)
    fold = nbformat.read(path, as_version=4).cells[0].outputs[0].data["text/html"]
    assert "<script>" not in fold and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in fold
    assert "(30 lines, stderr)" in fold


def test_mark_dry_run_labels_the_staged_config(tmp_path):
    shutil.copy(REPO / "_config.yml", tmp_path / "_config.yml")
    mark_dry_run(tmp_path)
    import yaml

    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    original = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["title"] == original["title"] + " (dry run)"
    assert config["html"]["announcement"] == DRY_RUN_BANNER
    assert config["repository"] == original["repository"] and config["sphinx"] == original["sphinx"]


def test_a_dry_run_never_builds_into_the_real_build_folder(tmp_path):
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, tmp_path / name)
    with pytest.raises(MedlibError, match="dry run must not build into"):
        build_book(tmp_path, "full", dry_run=True, build_dir=tmp_path / "_build", execute=False)


@pytest.fixture(scope="module")
def toy_dry_run(tmp_path_factory):
    """A one-notebook book built as a dry run: (staged notebook, html folder)."""
    root = tmp_path_factory.mktemp("toy")
    for name in ("_config.yml", "js-vendor.lock.json"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "_static", root / "_static")
    (root / "book").mkdir()
    shutil.copy(REPO / "book" / "references.bib", root / "book" / "references.bib")
    (root / "book" / "intro.md").write_text("# A toy book\n\nProse.\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_toy\n")
    (root / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy"),
        _code('import os\nprofile = os.environ.get("MEDLIB_PROFILE", "auto")\nseed = 0', tags=["parameters"]),
        nbformat.v4.new_code_cell('print("kernel sees", profile, "dry run =", os.environ.get("MEDLIB_DRY_RUN"))'),
        nbformat.v4.new_code_cell('for epoch in range(40):\n    print(f"epoch {epoch}", "loss=0.6931 " * 50)'),
    ]
    for cell in nb.cells[2:]:
        cell.execution_count = None
    nbformat.write(nb, root / "notebooks" / "01_toy.ipynb")
    index = build_book(root, "full", dry_run=True)
    assert index == root / "_build" / "dry-run" / "_build" / "html" / "index.html"
    assert "MEDLIB_DRY_RUN" not in __import__("os").environ  # restored after the build
    return root / "_build" / "dry-run" / "staging" / "notebooks" / "01_toy.ipynb", index.parent


def test_dry_run_kernels_run_the_dry_run_and_every_page_says_so(toy_dry_run):
    staged, html = toy_dry_run
    nb = nbformat.read(staged, as_version=4)
    assert "kernel sees full dry run = 1" in nb.cells[3].outputs[0].text  # after the injected parameters
    for page in ("book/intro.html", "notebooks/01_toy.html"):
        text = (html / page).read_text()
        assert "bd-header-announcement" in text and html_lib.escape(DRY_RUN_BANNER, quote=False) in text, page
        assert re.search(r"<title>[^<]*\(dry run\)</title>", text), page
    page = (html / "notebooks" / "01_toy.html").read_text()
    assert "os.environ.get(&quot;MEDLIB_PROFILE&quot;" not in page and 'os.environ.get("MEDLIB_PROFILE"' not in page
    assert "tag_hide-output" in page and "epoch 39" in page  # folded, still there behind the toggle
    assert (html / ".nojekyll").is_file()
