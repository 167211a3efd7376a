"""Build the book: papermill executes every notebook in ``_toc.yml``, Jupyter Book renders the copies.

Source notebooks stay stripped. ``build_book`` copies the book sources into a staging
folder under ``_build/``, executes each notebook listed in the table of contents (in
order, with the notebook's own folder as working directory) into that staging copy, then
runs ``jupyter-book build`` on the staging folder with warnings as errors. Jupyter Book's
own execution is off (``execute_notebooks: "off"``): papermill does all of it, so a failing
cell stops the build with the notebook and the cell named.

The staged copies are then prepared for readers (:func:`present_for_readers`): the machinery
cells (``parameters`` and papermill's ``injected-parameters``) get myst-nb's ``remove-cell`` tag
(they stay in the source notebooks), and logs longer than :data:`FOLD_LOG_LINES` lines are
folded behind a "show" toggle. ``_static/medlib.css`` wraps long output lines instead of
cutting them off at the right edge.

Notebooks run in **lanes** (:func:`notebook_lanes`): the ``0x`` notebooks (environment, datasets)
first, then one lane per chapter group (``1x`` Part A and beyond it, ``2x`` Part B) side by side
in separate processes, then the ``9x`` results page. ``jobs`` lanes run at once: on a CPU each
notebook's kernel gets ``cores // lanes still running`` threads, on CUDA each lane gets its own GPU.

A **dry run** (``build_book(..., dry_run=True)``, ``medlib book --dry-run``) executes the same
notebooks with ``MEDLIB_DRY_RUN=1`` in the kernels' environment (the profile's code paths with
capped work, see :mod:`medlib.profiles`), into its own build folder (``_build/dry-run``), and
every rendered page carries a banner saying that its numbers come from a dry run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import html
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from medlib.errors import MedlibError
from medlib.offline import vendor_assets

__all__ = [
    "toc_files",
    "toc_notebooks",
    "notebook_lanes",
    "default_jobs",
    "execute_notebooks",
    "present_for_readers",
    "mark_dry_run",
    "render",
    "build_book",
    "NotebookFailed",
    "FOLD_LOG_LINES",
    "DRY_RUN_BANNER",
    "DRY_RUN_BUILD",
]

# What a staged book needs besides the notebooks; everything else in the repo stays out.
_BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks", "_static")
# Cells that drive execution, not the story: kept in the notebooks, removed from the pages.
MACHINERY_TAGS = ("parameters", "injected-parameters")
# A log longer than this many lines is folded behind a toggle on the rendered page.
FOLD_LOG_LINES = 25
# A dry run builds here (relative to the book root), never into the real _build/html.
DRY_RUN_BUILD = Path("_build") / "dry-run"
DRY_RUN_BANNER = (
    "Dry run: every notebook ran the full profile's code paths with capped work (a step or two "
    "per training, random weights, synthetic data). The numbers on this page are not results."
)


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


@contextlib.contextmanager
def _kernel_environment(**variables: str | None) -> Iterator[None]:
    """Set (None: unset) environment variables for the kernels started inside, then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    try:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def notebook_lanes(notebooks: list[Path]) -> tuple[list[Path], list[list[Path]], list[Path]]:
    """Split toc-ordered notebooks into (first, lanes, last) by the tens digit of their number.

    ``0x`` notebooks (environment, datasets) run first: every chapter reads what they prepare.
    ``9x`` (results at a glance) run last: they read every chapter's results. Each other tens digit
    is a lane (``1x`` Part A and the Beyond chapter, ``2x`` Part B): its notebooks read each other's
    trained models in order, and nothing of another lane, so lanes can run side by side.
    A notebook without a ``NN_`` number runs first, in toc order (the safe place).
    """
    first: list[Path] = []
    last: list[Path] = []
    lanes: dict[str, list[Path]] = {}
    for nb in notebooks:
        match = re.match(r"(\d)\d_", nb.name)
        group = match.group(1) if match else None
        if group in (None, "0"):
            first.append(nb)
        elif group == "9":
            last.append(nb)
        else:
            lanes.setdefault(group, []).append(nb)
    return first, list(lanes.values()), last


def default_jobs() -> int:
    """How many lanes run at once by default: one per GPU on CUDA, else one per CPU core."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return os.cpu_count() or 1


def execute_notebooks(
    book_root: Path,
    staging: Path,
    profile: str,
    *,
    only: list[str] | None = None,
    log_output: bool = False,
    kernel_name: str = "python3",
    dry_run: bool = False,
    jobs: int = 1,
) -> list[ExecutedNotebook]:
    """Execute every toc notebook of ``book_root`` into ``staging`` (same relative paths).

    Kernels inherit ``MEDLIB_PROFILE=profile`` (nbval reads the same variable) and, for a dry run,
    ``MEDLIB_DRY_RUN=1``; both are restored afterwards. With ``jobs > 1`` the lanes of
    :func:`notebook_lanes` run side by side. Each executed copy is then prepared for readers
    (:func:`present_for_readers`).
    """
    book_root = Path(book_root).resolve()
    notebooks = toc_notebooks(book_root)
    if only:
        notebooks = [nb for nb in notebooks if any(key in nb.name for key in only)]
    if jobs < 1:
        raise MedlibError(f"jobs must be at least 1, got {jobs}")
    numbered = {nb: i for i, nb in enumerate(notebooks, 1)}
    task = _Task(book_root, Path(staging), profile, log_output, kernel_name, len(notebooks))
    with _kernel_environment(MEDLIB_PROFILE=profile, MEDLIB_DRY_RUN="1" if dry_run else None):
        first, lanes, last = notebook_lanes(notebooks)
        jobs = min(jobs, len(lanes))
        if jobs <= 1:
            return _execute(task, [(numbered[nb], nb) for nb in notebooks])
        done = _execute(task, [(numbered[nb], nb) for nb in first])
        done += _execute_lanes(task, [[(numbered[nb], nb) for nb in lane] for lane in lanes], jobs)
        return done + _execute(task, [(numbered[nb], nb) for nb in last])


@dataclass(frozen=True)
class _Task:
    """What every notebook execution of one build shares (picklable: lanes run in processes)."""

    book_root: Path
    staging: Path
    profile: str
    log_output: bool
    kernel_name: str
    total: int


def _execute(task: _Task, notebooks: list[tuple[int, Path]], stop=None, before_each=None) -> list[ExecutedNotebook]:
    import papermill as pm

    done: list[ExecutedNotebook] = []
    for i, nb in notebooks:
        if stop is not None and stop.is_set():  # another lane failed: start nothing new
            break
        if before_each is not None:
            before_each()
        rel = nb.relative_to(task.book_root)
        out = task.staging / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{i}/{task.total}] executing {rel} (profile={task.profile}) ...", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(out),
                parameters={"profile": task.profile},
                cwd=str(nb.parent),
                kernel_name=task.kernel_name,
                progress_bar=False,
                log_output=task.log_output,
                stdout_file=None,
            )
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell's details
            if stop is not None:
                stop.set()
            raise NotebookFailed(_failure_message(rel, exc)) from None
        present_for_readers(out)
        dt = time.perf_counter() - t0
        print(f"[{i}/{task.total}] {rel} done in {dt:.1f} s", flush=True)
        done.append(ExecutedNotebook(nb, out, dt))
    return done


_LANE = None  # set in each lane process: (the build's "a lane failed" event, the count of running lanes)


def _init_lane_process(stop, running) -> None:
    global _LANE
    _LANE = (stop, running)


def _run_lane(task: _Task, notebooks: list[tuple[int, Path]], environment: dict[str, str], cores: int | None,
              jobs: int) -> list[ExecutedNotebook]:
    """One lane, in its own process. ``cores``: share this many CPU cores (None: leave threads be)."""
    os.environ.update(environment)  # this lane's kernels inherit it (its GPU on CUDA)
    stop, running = _LANE

    def before_each() -> None:
        # A kernel's threads are fixed when it starts: each notebook gets its share of the cores
        # among the lanes still running, so the last lane's notebooks get every core.
        if cores:
            os.environ["OMP_NUM_THREADS"] = str(max(1, cores // max(1, min(jobs, running.value))))

    try:
        return _execute(task, notebooks, stop, before_each)
    finally:
        with running.get_lock():
            running.value -= 1


def _lane_environments(jobs: int) -> list[dict[str, str]]:
    """Per lane: on CUDA one visible GPU each (round robin); on a CPU nothing fixed (cores are shared
    among the lanes still running, notebook by notebook)."""
    import torch

    if torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(map(str, range(torch.cuda.device_count())))
        gpus = [g for g in visible.split(",") if g.strip()]
        return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(jobs)]
    return [{} for _ in range(jobs)]


def _execute_lanes(task: _Task, lanes: list[list[tuple[int, Path]]], jobs: int) -> list[ExecutedNotebook]:
    # Processes, not threads: each lane owns its environment (threads, GPU) and its kernels. A failing
    # lane sets ``stop``; the others finish the notebook they are running and start no other, so no
    # kernel is left computing behind the error.
    context = multiprocessing.get_context("spawn")
    stop, running = context.Event(), context.Value("i", len(lanes))
    environments = _lane_environments(jobs)
    names = ", ".join(f"{lane[0][1].name[:2]}–{lane[-1][1].name[:2]}" for lane in lanes)
    print(f"{len(lanes)} lanes ({names}) side by side in {jobs} processes", flush=True)
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_lane_process,
                                                initargs=(stop, running)) as pool:
        # threads are shared out on a CPU unless the user fixed them (OMP_NUM_THREADS) or lanes have GPUs
        cores = None if "OMP_NUM_THREADS" in os.environ or environments[0] else (os.cpu_count() or 1)
        futures = [pool.submit(_run_lane, task, lane, environments[i % jobs], cores, jobs)
                   for i, lane in enumerate(lanes)]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        if stop.is_set():
            print("a notebook failed: the other lanes finish the notebook they are running and stop", flush=True)
        concurrent.futures.wait(futures)
    done: list[ExecutedNotebook] = []
    for future in futures:
        done.extend(future.result())  # re-raises the first lane's NotebookFailed, if any
    return sorted(done, key=lambda d: d.source.name)


def _coalesce_streams(outputs: list) -> list:
    """Consecutive stream outputs of the same name as one (what a reader sees as one log)."""
    import nbformat

    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] = previous["text"] + output["text"]
        else:
            merged.append(nbformat.from_dict(dict(output)) if output.get("output_type") == "stream" else output)
    return merged


def _log_lines(text: str) -> list[str]:
    # a carriage return overwrites the line (text progress bars): keep what a terminal would show
    return [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]


def _folded_log(output, lines: list[str]):
    import nbformat

    body = html.escape("\n".join(lines))
    return nbformat.v4.new_output(
        "display_data",
        data={
            "text/html": (f'<details class="medlib-log"><summary>show the log ({len(lines)} lines, '
                          f'{output["name"]})</summary><pre>{body}</pre></details>'),
            "text/plain": "\n".join(lines),
        },
    )


def present_for_readers(path: Path, *, fold_lines: int = FOLD_LOG_LINES) -> None:
    """Prepare an executed notebook for the rendered page (the source notebook is not touched).

    * ``parameters`` and ``injected-parameters`` cells get ``remove-cell``;
    * a cell whose outputs are all logs longer than ``fold_lines`` gets ``hide-output`` (a toggle);
      a long log beside figures or tables is folded on its own (``<details>``), so they stay shown.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = list(cell.metadata.get("tags", []))
        if any(tag in tags for tag in MACHINERY_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
        outputs = _coalesce_streams(cell.get("outputs", []))
        long_logs = [o for o in outputs if o.get("output_type") == "stream" and len(_log_lines(o["text"])) > fold_lines]
        if long_logs and all(o.get("output_type") == "stream" for o in outputs):
            if "hide-output" not in tags:
                tags.append("hide-output")
        elif long_logs:
            outputs = [_folded_log(o, _log_lines(o["text"])) if any(o is log for log in long_logs) else o
                       for o in outputs]
        cell.outputs = outputs
        if tags:
            cell.metadata["tags"] = tags
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def mark_dry_run(staging: Path) -> None:
    """Label every page of the staged book as a dry run: a banner on each page and in the title."""
    config_path = Path(staging) / "_config.yml"
    config = yaml.safe_load(config_path.read_text())
    config["title"] = f"{config.get('title', 'Book')} (dry run)"
    config.setdefault("html", {})["announcement"] = DRY_RUN_BANNER
    tmp = config_path.with_name(".dry-run-config.yml.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    os.replace(tmp, config_path)


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
    dry_run: bool = False,
    jobs: int | None = None,
) -> Path:
    """Stage, execute and render the book; returns the path of ``_build/html/index.html``.

    ``dry_run=True`` runs every notebook as a dry run of ``profile`` (``MEDLIB_DRY_RUN=1``), builds
    into ``_build/dry-run`` unless ``build_dir`` is given, and labels every page as a dry run.
    ``jobs`` lanes of notebooks run at once (None: :func:`default_jobs`; see :func:`notebook_lanes`).
    """
    book_root = Path(book_root).resolve()
    build_dir = Path(build_dir or book_root / (DRY_RUN_BUILD if dry_run else "_build")).resolve()
    if dry_run and build_dir == (book_root / "_build").resolve():
        raise MedlibError(f"a dry run must not build into {build_dir}, where the real book is built: "
                          f"leave build_dir unset (it defaults to {DRY_RUN_BUILD}) or pass another folder")
    staging = build_dir / "staging"
    t0 = time.perf_counter()
    stage_sources(book_root, staging)
    if dry_run:
        mark_dry_run(staging)
    # MathJax and the widget JavaScript come from the build, not a CDN: pages work offline.
    # Before executing, so a missing registry fails in seconds, not after hours of notebooks.
    vendor_assets(book_root, staging)
    if execute:
        done = execute_notebooks(book_root, staging, profile, only=only, log_output=log_output, dry_run=dry_run,
                                 jobs=default_jobs() if jobs is None else jobs)
        if only:  # a partial build renders the prose and the notebooks it executed, nothing stale
            prune_toc(staging / "_toc.yml", {nb.source.relative_to(book_root).with_suffix("").as_posix() for nb in done})
    # ``--path-output X`` writes to X/_build/html, so hand the build folder's parent
    index = render(book_root, staging, build_dir.parent if build_dir.name == "_build" else build_dir)
    # GitHub Pages runs Jekyll unless told not to, and Jekyll drops _static/ and _vendor/ (leading "_")
    (index.parent / ".nojekyll").touch()
    print(f"book built in {time.perf_counter() - t0:.0f} s: {index}", flush=True)
    return index
