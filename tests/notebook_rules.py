"""The book's notebook conventions as code, so a test can check them on any notebook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import yaml

MAX_LOGIC_LINES = 20  # a longer cell belongs in medlib
NAME = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")


def repository_url(repo: Path) -> str:
    return yaml.safe_load((repo / "_config.yml").read_text())["repository"]["url"]


def logic_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))


HIDDEN_INPUT = {"remove-input", "remove-cell", "hide-input", "hide-cell"}  # the reader does not see the code
MAX_INSTALL_LINES = 6  # the install cell is the same everywhere: the rest lives in medlib.colab


def install_cell_problems(source: str, repo_url: str) -> list[str]:
    """What is wrong with a notebook's first code cell, the one that installs medlib on Colab.

    It must ``%pip install "medlib @ git+<repository.url of _config.yml>@v<medlib's version>"`` (the
    book's release; the magic shows pip's errors in the cell, a captured subprocess hides them), only
    on Colab (it names ``google.colab``), in at most :data:`MAX_INSTALL_LINES` lines, and never name
    Colab's torch/torchvision (pip keeps them because medlib's ranges accept them).
    """
    from medlib import __version__

    out = []
    if len(source.strip().splitlines()) > MAX_INSTALL_LINES:
        out.append(f"the install cell has {len(source.strip().splitlines())} lines (> {MAX_INSTALL_LINES}): "
                   "move the rest into medlib.colab")
    code_lines = [l for l in source.splitlines() if l.strip() and not l.strip().startswith("#")]
    installs = [l for l in code_lines if re.match(r"\s*%pip\s+install\b", l)]
    pinned = f"medlib @ git+{repo_url}@v{__version__}"
    if not any(f'{pinned}"' in l.replace("'", '"') for l in installs):
        out.append(f'the first code cell must `%pip install "{pinned}"` (the URL of _config.yml, the release tag)')
    if not any("google.colab" in l for l in code_lines):
        out.append("the first code cell must install medlib only on Colab (check for google.colab)")
    if any(re.search(r"\bsubprocess\b|^\s*!\s*pip\b|pip\.main", l) for l in code_lines):
        out.append("the first code cell must install with %pip, whose errors show in the cell")
    if any(re.search(r"\btorch(vision)?\b", l) for l in code_lines):
        out.append("the Colab install cell must never (re)install torch")
    return out


def problems(path: Path, repo_url: str) -> list[str]:
    """Every convention ``path`` breaks, as readable sentences (empty when it is clean)."""
    out: list[str] = []
    if not NAME.match(path.name):
        out.append(f"name {path.name!r} is not '<two digits>_<snake_case>.ipynb'")
    raw = json.loads(path.read_text())  # nbformat.read would add missing cell ids silently
    missing = [i for i, c in enumerate(raw.get("cells", [])) if "id" not in c]
    if missing:
        out.append(f"cells {missing} have no id: nbformat 4.5 requires one per cell")
    nb = nbformat.read(path, as_version=4)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        out.append(f"invalid notebook: {exc.message}")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        out.append(f"kernelspec is {kernel!r}, expected 'python3'")
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            out.append(f"cell {i} has outputs or an execution count: commit notebooks stripped")
        n = logic_lines(cell.source)
        if n > MAX_LOGIC_LINES:
            out.append(f"cell {i} has {n} lines of logic (> {MAX_LOGIC_LINES}): move it into medlib")
        glues = len(re.findall(r"(?<![\w.])glue\(", cell.source))
        if glues > 1 and not set(cell.get("metadata", {}).get("tags", [])) & HIDDEN_INPUT:
            out.append(f"cell {i} shows the reader {glues} glue calls: move them into a cell tagged remove-input")
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        out.append(f"{len(tagged)} cells tagged 'parameters', expected exactly one")
    else:
        src = tagged[0].source
        if "MEDLIB_PROFILE" not in src or not re.search(r"^profile\s*=", src, re.M) or not re.search(r"^seed\s*=", src, re.M):
            out.append("the parameters cell must set `profile` from MEDLIB_PROFILE and `seed`")
    if not code:
        out.append("no code cells")
    else:
        out += install_cell_problems(code[0].source, repo_url)
    if not any("start(" in c.source for c in code):
        out.append("no provenance banner: call medlib.notebook.start(profile, seed)")
    return out
