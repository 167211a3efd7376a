"""Build the book: papermill executes every notebook in ``_toc.yml``, Jupyter Book renders the copies.

Source notebooks stay stripped. ``build_book`` copies the book sources into a staging
folder under ``_build/``, executes each notebook listed in the table of contents (in
order, with the notebook's own folder as working directory) into that staging copy, then
runs ``jupyter-book build`` on the staging folder with warnings as errors. Jupyter Book's
own execution is off (``execute_notebooks: "off"``): papermill does all of it, so a failing
cell stops the build with the notebook and the cell named.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from medlib.errors import MedlibError
from medlib.offline import vendor_assets

__all__ = ["toc_files", "toc_notebooks", "execute_notebooks", "render", "build_book", "NotebookFailed"]

# What a staged book needs besides the notebooks; everything else in the repo stays out.
_BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks", "_static")


class NotebookFailed(MedlibError):
    """A notebook cell raised during execution."""


def _toc_entries(node) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        if "root" in node:
            out.append(node["root"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                out.extend(_toc_entries(child))
    elif isinstance(node, list):
        for child in node:
            out.extend(_toc_entries(child))
    return out


def toc_files(book_root: Path) -> list[Path]:
    """Every document listed in ``_toc.yml``, in reading order, resolved to an existing file."""
    book_root = Path(book_root)
    toc_path = book_root / "_toc.yml"
    if not toc_path.is_file():
        raise MedlibError(f"no _toc.yml in {book_root}: run `medlib book` from the repository root")
    toc = yaml.safe_load(toc_path.read_text())
    files = []
    for entry in _toc_entries(toc):
        stem = book_root / entry
        matches = [stem] if stem.suffix and stem.is_file() else [
            stem.with_suffix(ext) for ext in (".ipynb", ".md") if stem.with_suffix(ext).is_file()
        ]
        if not matches:
            raise MedlibError(f"_toc.yml lists {entry!r} but neither {entry}.ipynb nor {entry}.md exists")
        files.append(matches[0])
    return files


def toc_notebooks(book_root: Path) -> list[Path]:
    return [p for p in toc_files(book_root) if p.suffix == ".ipynb"]


@dataclass
class ExecutedNotebook:
    source: Path
    output: Path
    seconds: float


def _failure_message(nb_path: Path, exc: Exception) -> str:
    cell = getattr(exc, "cell_index", None)
    count = getattr(exc, "exec_count", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    first = source[0] if source else ""
    where = f"cell {cell}" if cell is not None else "a cell"
    if count is not None:
        where += f" (execution count {count})"
    return f"notebook {nb_path} failed in {where}: {ename}: {evalue}\n    first line of the cell: {first}"


def execute_notebooks(
    book_root: Path,
    staging: Path,
    profile: str,
    *,
    only: list[str] | None = None,
    log_output: bool = False,
    kernel_name: str = "python3",
) -> list[ExecutedNotebook]:
    """Execute every toc notebook of ``book_root`` into ``staging`` (same relative paths)."""
    import papermill as pm

    book_root = Path(book_root).resolve()
    notebooks = toc_notebooks(book_root)
    if only:
        notebooks = [nb for nb in notebooks if any(key in nb.name for key in only)]
    done: list[ExecutedNotebook] = []
    os.environ["MEDLIB_PROFILE"] = profile  # the kernel inherits it (nbval reads the same variable)
    for i, nb in enumerate(notebooks, 1):
        rel = nb.relative_to(book_root)
        out = Path(staging) / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{i}/{len(notebooks)}] executing {rel} (profile={profile}) ...", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(out),
                parameters={"profile": profile},
                cwd=str(nb.parent),
                kernel_name=kernel_name,
                progress_bar=False,
                log_output=log_output,
                stdout_file=None,
            )
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell's details
            raise NotebookFailed(_failure_message(rel, exc)) from None
        dt = time.perf_counter() - t0
        print(f"[{i}/{len(notebooks)}] {rel} done in {dt:.1f} s", flush=True)
        done.append(ExecutedNotebook(nb, out, dt))
    return done


def prune_toc(toc_path: Path, keep_notebooks: set[str]) -> None:
    """Drop every notebook entry of ``toc_path`` not in ``keep_notebooks`` (paths without suffix)."""
    toc_path = Path(toc_path)
    book_root = toc_path.parent

    def keep(entry) -> bool:
        path = entry.get("file")
        return path is None or path in keep_notebooks or not (book_root / f"{path}.ipynb").is_file()

    def walk(node):
        if isinstance(node, dict):
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    node[key] = [walk(child) for child in node[key] if not isinstance(child, dict) or keep(child)]
                    if not node[key]:
                        del node[key]
            if "parts" in node:
                node["parts"] = [part for part in node["parts"] if part.get("chapters")]
        return node

    toc_path.write_text(yaml.safe_dump(walk(yaml.safe_load(toc_path.read_text())), sort_keys=False, allow_unicode=True))


def stage_sources(book_root: Path, staging: Path) -> None:
    """Copy the book's sources (not the data, not the library) into ``staging``."""
    book_root = Path(book_root).resolve()
    staging = Path(staging)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    ignore = shutil.ignore_patterns("data", ".cache", ".ipynb_checkpoints", "__pycache__", "_build")
    for name in _BOOK_SOURCES:
        src = book_root / name
        if src.is_dir():
            shutil.copytree(src, staging / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, staging / name)


def render(book_root: Path, staging: Path, output: Path) -> Path:
    """``jupyter-book build`` the staged folder, warnings as errors; returns ``index.html``'s path."""
    book_root = Path(book_root).resolve()
    staging = Path(staging).resolve()
    output = Path(output).resolve()
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build", str(staging),
        "--config", str(staging / "_config.yml"),  # absolute paths: we build a staged folder
        "--toc", str(staging / "_toc.yml"),
        "--path-output", str(output),
        "-W", "-n", "--keep-going",
    ]
    print("rendering:", " ".join(cmd[1:3]), "→", output / "_build" / "html", flush=True)
    proc = subprocess.run(cmd, cwd=staging, text=True, capture_output=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise MedlibError(f"jupyter-book build failed (warnings are errors):\n{tail}")
    index = output / "_build" / "html" / "index.html"
    if not index.is_file():
        raise MedlibError(f"jupyter-book reported success but {index} is missing")
    return index


def build_book(
    book_root: Path,
    profile: str = "smoke",
    *,
    build_dir: Path | None = None,
    only: list[str] | None = None,
    execute: bool = True,
    log_output: bool = False,
) -> Path:
    """Stage, execute and render the book; returns the path of ``_build/html/index.html``."""
    book_root = Path(book_root).resolve()
    build_dir = Path(build_dir or book_root / "_build").resolve()
    staging = build_dir / "staging"
    t0 = time.perf_counter()
    stage_sources(book_root, staging)
    # MathJax and the widget JavaScript come from the build, not a CDN: pages work offline.
    # Before executing, so a missing registry fails in seconds, not after hours of notebooks.
    vendor_assets(book_root, staging)
    if execute:
        done = execute_notebooks(book_root, staging, profile, only=only, log_output=log_output)
        if only:  # a partial build renders the prose and the notebooks it executed, nothing stale
            prune_toc(staging / "_toc.yml", {nb.source.relative_to(book_root).with_suffix("").as_posix() for nb in done})
    # ``--path-output X`` writes to X/_build/html, so hand the build folder's parent
    index = render(book_root, staging, build_dir.parent if build_dir.name == "_build" else build_dir)
    print(f"book built in {time.perf_counter() - t0:.0f} s: {index}", flush=True)
    return index
