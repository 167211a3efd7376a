"""medlib.notebook outside and inside Jupyter Book: figures and glued numbers must reach the reader.

Outside the book (Colab, nbval) ``myst_nb`` is not importable; the tests block it the way a
missing package behaves (``sys.modules[name] = None`` makes ``import`` raise ImportError) and
capture what a real IPython shell publishes.
"""

import base64
import re
import struct
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.pylabtools import select_figure_formats
from IPython.utils.capture import capture_output

from medlib.notebook import banner, glue, glue_figure, in_jupyter_book, start
from medlib.profiles import FULL, SMOKE, dry_run


@pytest.fixture
def shell():
    """A real IPython shell rendering matplotlib figures as PNG, as a Jupyter kernel does."""
    sh = InteractiveShell.instance()
    select_figure_formats(sh, {"png"})
    yield sh
    InteractiveShell.clear_instance()


@pytest.fixture
def no_myst_nb(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_outside_the_book_glue_figure_displays_the_figure_then_closes_it(shell, no_myst_nb):
    assert not in_jupyter_book()
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.plot([0, 1], [1, 0])
    with capture_output() as cap:
        glue_figure("fig-x", fig)
    pngs = [o.data["image/png"] for o in cap.outputs if "image/png" in o.data]
    assert len(pngs) == 1
    png = pngs[0] if isinstance(pngs[0], bytes) else base64.b64decode(pngs[0])
    w, h = _png_size(png)
    assert 100 < w < 400 and 75 < h < 300 and w > h  # a 4 x 3 inch figure (tight bbox trims margins)
    assert fig.number not in plt.get_fignums()


def test_outside_the_book_glued_numbers_appear_in_the_output(shell, no_myst_nb):
    import numpy as np
    import pandas as pd

    with capture_output() as cap:
        glue("acc", 73.1)
        glue("acc-text", "73.1%")
        glue("delta", np.float32(0.25))
        glue("table", pd.DataFrame({"a": [1, 2]}))
    lines = cap.stdout.splitlines()
    assert lines[:3] == ["acc = 73.1", "acc-text = 73.1%", "delta = 0.25"]
    assert lines[3] == "table ="
    assert any("text/html" in o.data or "text/plain" in o.data for o in cap.outputs)


def test_inside_the_book_glue_goes_to_myst_nb_and_prints_nothing(shell):
    pytest.importorskip("myst_nb")
    assert in_jupyter_book()
    fig, _ = plt.subplots()
    with capture_output() as cap:
        glue("n", 3)
        glue_figure("fig-y", fig)
    assert cap.stdout == ""
    # myst_nb publishes glued values as display data with the name in its metadata, hidden from the page
    names = [o.metadata.get("scrapbook", {}).get("name") for o in cap.outputs if o.metadata]
    assert names == ["n", "fig-y"]
    assert fig.number not in plt.get_fignums()


def test_start_defaults_to_the_profiles_first_seed(shell):
    import torch

    run = start(FULL, show=False)
    assert run.seed == FULL.first_seed == 3315
    expected = torch.rand(3)
    start(FULL, show=False)
    assert torch.equal(torch.rand(3), expected)  # seeded with 3315, not 0
    assert start(SMOKE, seed=7, show=False).seed == 7


def test_banner_names_a_dry_run(shell):
    import torch

    line = banner(dry_run(FULL), 3315, torch.device("cpu"))
    assert "**full (dry run)**" in line and "seed: 3315" in line
    assert "**smoke**" in banner(SMOKE, 0, torch.device("cpu"))
    with capture_output() as cap:
        start(dry_run(FULL))
    assert "full (dry run)" in cap.outputs[0].data["text/markdown"]


def test_glued_text_renders_without_quotes_in_myst_nb(shell, tmp_path):
    """A glued str reaches the page as its text through both roles, markup characters verbatim."""
    pytest.importorskip("myst_nb")
    import subprocess

    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    with capture_output() as cap:
        glue("acc", "55.0%")
        glue("name", "site_1 *x* [a] {b} $c$")
        glue("n", 3)
    outputs = [new_output("display_data", data=o.data, metadata=o.metadata) for o in cap.outputs]
    nb = new_notebook(cells=[new_code_cell("glue()", outputs=outputs),
                             new_markdown_cell("any {glue:}`acc` text {glue:text}`acc` name {glue:}`name` n {glue:}`n`")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "page.ipynb"
    nbformat.write(nb, src)
    cli = Path(sys.executable).with_name("mystnb-docutils-html")
    html = subprocess.run([str(cli), "--nb-execution-mode=off", str(src)], capture_output=True, text=True, check=True,
                          cwd=tmp_path).stdout  # the renderer writes its assets under ./build
    text = re.sub(r"<[^>]+>", "", html)
    assert "any 55.0% text 55.0% name site_1 *x* [a] {b} $c$ n 3" in text, text[-400:]
    assert "'55.0%'" not in html and "&#x27;55.0%&#x27;" not in html


def test_start_shows_table_cells_whole(shell):
    import pandas as pd

    reason = "one cosine over all 4 epochs (FusionM4Net's schedule), " * 3
    with pd.option_context("display.max_colwidth", 50):
        start(SMOKE, show=False)
        html = pd.DataFrame({"why": [reason]})._repr_html_()
    assert reason.strip() in html and "…" not in html and "..." not in html


def test_evaluated_epochs_names_the_epochs_a_curve_holds():
    import math

    import pandas as pd

    from medlib.notebook import evaluated_epochs

    every_epoch = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_loss": [0.9, 0.8, 0.7, 0.6]})
    assert evaluated_epochs(every_epoch, "val_loss") == "epochs 1, 2, 3 and 4"
    cadence = pd.DataFrame({"epoch": range(1, 51), "val_loss": [1.0 if e % 10 == 0 or e == 50 else math.nan
                                                                for e in range(1, 51)]})
    assert evaluated_epochs(cadence, "val_loss") == "epochs 10, 20, 30, 40 and 50"
    sparse = pd.DataFrame({"epoch": range(1, 71), "val_loss": [1.0 if e % 10 == 0 else math.nan for e in range(1, 71)]})
    assert evaluated_epochs(sparse, "val_loss") == "7 epochs: 10, 20, …, 60 and 70"
    assert evaluated_epochs(pd.DataFrame({"epoch": [1], "train_loss": [1.0]}), "val_loss") == "no epoch"
