"""Build the book: papermill executes every ``_toc.yml`` notebook into a staging copy (a failing cell stops the
build naming notebook and cell), in lanes side by side (:func:`notebook_lanes`); Jupyter Book renders the copy.
A dry run (``MEDLIB_DRY_RUN=1`` in the kernels) builds into ``_build/dry-run``, a banner on every page.
"""

from __future__ import annotations

import concurrent.futures
import html
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import yaml

from medlib.errors import MedlibError
from medlib.offline import vendor_assets

# Cells that drive execution, not the story: kept in the notebooks, removed from the pages.
MACHINERY_TAGS = ("parameters", "injected-parameters")
FOLD_LOG_LINES = 25  # a longer log is folded behind a toggle on the rendered page
DRY_RUN_BUILD = Path("_build") / "dry-run"  # relative to the book root: never the real _build/html
DRY_RUN_BANNER = (
    "Dry run: every notebook ran the full profile's code paths with capped work (a step or two "
    "per training, random weights, synthetic data). The numbers on this page are not results."
)
_TOC_KEYS = ("parts", "chapters", "sections")


class NotebookFailed(MedlibError):
    """A notebook cell raised during execution."""


class ExecutedNotebook(NamedTuple):
    source: Path
    output: Path
    seconds: float


def _toc_entries(node) -> list[str]:
    if isinstance(node, list):
        return [entry for child in node for entry in _toc_entries(child)]
    if not isinstance(node, dict):
        return []
    own = [node[key] for key in ("file", "root") if key in node]
    return own + [entry for key in _TOC_KEYS for entry in _toc_entries(node.get(key) or [])]


def toc_files(book_root: Path) -> list[Path]:
    """Every document listed in ``_toc.yml``, in reading order, resolved to an existing file."""
    toc_path = Path(book_root) / "_toc.yml"
    if not toc_path.is_file():
        raise MedlibError(f"no _toc.yml in {book_root}: run `medlib book` from the repository root")
    files = []
    for entry in _toc_entries(yaml.safe_load(toc_path.read_text())):
        stem = Path(book_root) / entry
        candidates = ([stem] if stem.suffix else []) + [stem.with_suffix(ext) for ext in (".ipynb", ".md")]
        found = [path for path in candidates if path.is_file()]
        if not found:
            raise MedlibError(f"_toc.yml lists {entry!r} but neither {entry}.ipynb nor {entry}.md exists")
        files.append(found[0])
    return files


def toc_notebooks(book_root: Path) -> list[Path]:
    return [p for p in toc_files(book_root) if p.suffix == ".ipynb"]


def notebook_lanes(notebooks: list[Path]) -> tuple[list[Path], list[list[Path]], list[Path]]:
    """Split toc-ordered notebooks into (first, lanes, last) by the tens digit of their ``NN_`` number.

    ``0x`` (and unnumbered) prepare what every chapter reads, ``9x`` read every chapter's results; each other digit
    is a lane (``1x`` Part A, ``2x`` Part B) whose notebooks read each other's models in order, not another lane's.
    """
    first: list[Path] = []
    last: list[Path] = []
    lanes: dict[str, list[Path]] = {}
    for nb in notebooks:
        match = re.match(r"(\d)\d_", nb.name)
        group = match.group(1) if match else "0"
        (first if group == "0" else last if group == "9" else lanes.setdefault(group, [])).append(nb)
    return first, list(lanes.values()), last


def default_jobs() -> int:
    """How many lanes run at once by default: one per GPU on CUDA, else one per CPU core."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else os.cpu_count() or 1


class _Task(NamedTuple):
    """What every notebook execution of one build shares (picklable: lanes run in processes)."""

    book_root: Path
    staging: Path
    profile: str
    log_output: bool
    kernel_name: str
    order: tuple[Path, ...]  # every notebook of the build, numbered in this order


def execute_notebooks(book_root: Path, staging: Path, profile: str, *, only: list[str] | None = None,
                      log_output: bool = False, kernel_name: str = "python3", dry_run: bool = False,
                      jobs: int = 1) -> list[ExecutedNotebook]:
    """Execute every toc notebook of ``book_root`` into ``staging`` (same relative paths), ``jobs`` lanes at once;
    kernels inherit ``MEDLIB_PROFILE=profile`` (nbval reads it too) and ``MEDLIB_DRY_RUN``."""
    book_root = Path(book_root).resolve()
    notebooks = [nb for nb in toc_notebooks(book_root) if not only or any(key in nb.name for key in only)]
    if jobs < 1:
        raise MedlibError(f"jobs must be at least 1, got {jobs}")
    task = _Task(book_root, Path(staging), profile, log_output, kernel_name, tuple(notebooks))
    first, lanes, last = notebook_lanes(notebooks)
    jobs = min(jobs, len(lanes))
    # the whole environment is restored afterwards
    with mock.patch.dict(os.environ, MEDLIB_PROFILE=profile, MEDLIB_DRY_RUN="1" if dry_run else "0"):
        if jobs <= 1:
            return _execute(task, notebooks)
        return _execute(task, first) + _execute_lanes(task, lanes, jobs) + _execute(task, last)


def _failure_message(nb: Path, exc: Exception) -> str:
    # papermill's PapermillExecutionError carries the cell's details
    where = "a cell" if getattr(exc, "cell_index", None) is None else f"cell {exc.cell_index}"
    if getattr(exc, "exec_count", None) is not None:
        where += f" (execution count {exc.exec_count})"
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    return (f"notebook {nb} failed in {where}: {getattr(exc, 'ename', type(exc).__name__)}: "
            f"{getattr(exc, 'evalue', str(exc))}\n    first line of the cell: {source[0] if source else ''}")


# In a lane process: (the build's "a lane failed" event, the count of running lanes, CPU cores to share, jobs).
_LANE = None


def _init_lane(*lane) -> None:
    global _LANE
    _LANE = lane


def _execute(task: _Task, notebooks: list[Path]) -> list[ExecutedNotebook]:
    import papermill as pm

    stop, running, cores, jobs = _LANE or (None, None, None, 1)
    done: list[ExecutedNotebook] = []
    for nb in notebooks:
        if stop is not None and stop.is_set():  # another lane failed: start nothing new
            break
        if cores:  # a kernel's threads are fixed at its start: the last lane running gets every core
            os.environ["OMP_NUM_THREADS"] = str(max(1, cores // max(1, min(jobs, running.value))))
        rel = nb.relative_to(task.book_root)
        out = task.staging / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        number = f"[{task.order.index(nb) + 1}/{len(task.order)}]"
        print(f"{number} executing {rel} (profile={task.profile}) ...", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(out), parameters={"profile": task.profile}, cwd=str(nb.parent),
                                kernel_name=task.kernel_name, progress_bar=False, log_output=task.log_output,
                                stdout_file=None)
        except Exception as exc:
            if stop is not None:
                stop.set()
            raise NotebookFailed(_failure_message(rel, exc)) from None
        present_for_readers(out)
        done.append(ExecutedNotebook(nb, out, time.perf_counter() - t0))
        print(f"{number} {rel} done in {done[-1].seconds:.1f} s", flush=True)
    return done


def _run_lane(task: _Task, notebooks: list[Path], environment: dict[str, str]) -> list[ExecutedNotebook]:
    os.environ.update(environment)  # this lane's kernels inherit it (its GPU on CUDA)
    try:
        return _execute(task, notebooks)
    finally:
        with _LANE[1].get_lock():
            _LANE[1].value -= 1


def _lane_environments(jobs: int) -> list[dict[str, str]]:
    """Per lane: on CUDA one visible GPU each (round robin); on a CPU nothing (cores are shared as lanes end)."""
    import torch

    if not torch.cuda.is_available():
        return [{} for _ in range(jobs)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(map(str, range(torch.cuda.device_count())))
    gpus = [g for g in visible.split(",") if g.strip()]
    return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(jobs)]


def _execute_lanes(task: _Task, lanes: list[list[Path]], jobs: int) -> list[ExecutedNotebook]:
    # Processes, not threads: each lane owns its environment (threads, GPU) and its kernels. A failing lane sets
    # ``stop``; the others finish the notebook they are running and start no other, so no kernel computes on.
    context = multiprocessing.get_context("spawn")
    stop, running = context.Event(), context.Value("i", len(lanes))
    environments = _lane_environments(jobs)
    # threads are shared out on a CPU unless the user fixed them (OMP_NUM_THREADS) or lanes have GPUs
    cores = None if "OMP_NUM_THREADS" in os.environ or environments[0] else (os.cpu_count() or 1)
    names = ", ".join(f"{lane[0].name[:2]}–{lane[-1].name[:2]}" for lane in lanes)
    print(f"{len(lanes)} lanes ({names}) side by side in {jobs} processes", flush=True)
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_lane,
                                                initargs=(stop, running, cores, jobs)) as pool:
        futures = [pool.submit(_run_lane, task, lane, environments[i % jobs]) for i, lane in enumerate(lanes)]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        if stop.is_set():
            print("a notebook failed: the other lanes finish the notebook they are running and stop", flush=True)
        concurrent.futures.wait(futures)
    done = [d for future in futures for d in future.result()]  # re-raises the first lane's NotebookFailed
    return sorted(done, key=lambda d: d.source.name)


def _coalesce_streams(outputs: list) -> list:
    """Consecutive stream outputs of the same name as one (what a reader sees as one log)."""
    import nbformat

    merged: list = []
    for output in outputs:
        if output.get("output_type") != "stream":
            merged.append(output)
        elif merged and merged[-1].get("output_type") == "stream" and merged[-1].get("name") == output.get("name"):
            merged[-1]["text"] = merged[-1]["text"] + output["text"]
        else:
            merged.append(nbformat.from_dict(dict(output)))
    return merged


def _log_lines(text: str) -> list[str]:
    # a carriage return overwrites the line (text progress bars): keep what a terminal would show
    return [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]


def _folded_log(output):
    import nbformat

    lines = _log_lines(output["text"])
    text = "\n".join(lines)
    summary = f"<summary>show the log ({len(lines)} lines, {output['name']})</summary>"
    return nbformat.v4.new_output("display_data", data={
        "text/html": f'<details class="medlib-log">{summary}<pre>{html.escape(text)}</pre></details>',
        "text/plain": text})


def present_for_readers(path: Path, *, fold_lines: int = FOLD_LOG_LINES) -> None:
    """Prepare an executed notebook for its page: machinery cells get ``remove-cell``; a cell whose outputs are
    all logs longer than ``fold_lines`` gets ``hide-output``; a long log beside figures is folded alone."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = list(cell.metadata.get("tags", []))
        if set(MACHINERY_TAGS) & set(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
        outputs = _coalesce_streams(cell.get("outputs", []))
        long = [o.get("output_type") == "stream" and len(_log_lines(o["text"])) > fold_lines for o in outputs]
        if any(long) and all(o.get("output_type") == "stream" for o in outputs):
            if "hide-output" not in tags:
                tags.append("hide-output")
        elif any(long):
            outputs = [_folded_log(o) if fold else o for o, fold in zip(outputs, long)]
        cell.outputs = outputs
        if tags:
            cell.metadata["tags"] = tags
    _replace(Path(path), nbformat.writes(nb) + "\n")


def _replace(path: Path, text: str | dict) -> None:
    """Write ``text`` (a dict as YAML) over ``path`` through a temporary file: never half a notebook or config."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(text, sort_keys=False, allow_unicode=True) if isinstance(text, dict) else text)
    os.replace(tmp, path)


def mark_dry_run(staging: Path) -> None:
    """Label every page of the staged book as a dry run: a banner on each page and in the title."""
    path = Path(staging) / "_config.yml"
    config = yaml.safe_load(path.read_text())
    config["title"] = f"{config.get('title', 'Book')} (dry run)"
    config.setdefault("html", {})["announcement"] = DRY_RUN_BANNER
    _replace(path, config)


def prune_toc(toc_path: Path, keep_notebooks: set[str]) -> None:
    """Drop every notebook entry of ``toc_path`` not in ``keep_notebooks`` (paths without suffix)."""
    book_root = Path(toc_path).parent

    def keep(entry) -> bool:
        path = entry.get("file")
        return path is None or path in keep_notebooks or not (book_root / f"{path}.ipynb").is_file()

    def walk(node):
        if isinstance(node, dict):
            for key in [k for k in _TOC_KEYS if k in node]:
                node[key] = [walk(child) for child in node[key] if not isinstance(child, dict) or keep(child)]
                if not node[key]:
                    del node[key]
            if "parts" in node:
                node["parts"] = [part for part in node["parts"] if part.get("chapters")]
        return node

    _replace(Path(toc_path), walk(yaml.safe_load(Path(toc_path).read_text())))


def build_book(book_root: Path, profile: str = "smoke", *, build_dir: Path | None = None,
               only: list[str] | None = None, execute: bool = True, log_output: bool = False,
               dry_run: bool = False, jobs: int | None = None) -> Path:
    """Stage, execute and render the book; returns the path of ``_build/html/index.html``. ``jobs`` lanes run at
    once (None: :func:`default_jobs`); a dry run builds into ``_build/dry-run`` unless ``build_dir`` is given."""
    book_root = Path(book_root).resolve()
    build_dir = Path(build_dir or book_root / (DRY_RUN_BUILD if dry_run else "_build")).resolve()
    if dry_run and build_dir == (book_root / "_build").resolve():
        raise MedlibError(f"a dry run must not build into {build_dir}, where the real book is built: "
                          f"leave build_dir unset (it defaults to {DRY_RUN_BUILD}) or pass another folder")
    staging = build_dir / "staging"
    t0 = time.perf_counter()
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    ignore = shutil.ignore_patterns("data", ".cache", ".ipynb_checkpoints", "__pycache__", "_build")
    for name in ("_config.yml", "_toc.yml", "book", "notebooks", "_static"):  # the sources, not data or library
        src = book_root / name
        if src.is_dir():
            shutil.copytree(src, staging / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, staging / name)
    if dry_run:
        mark_dry_run(staging)
    # MathJax and the widgets' JavaScript come from the build, not a CDN, so pages work offline. Before
    # executing: a missing registry fails in seconds, not after hours of notebooks.
    vendor_assets(book_root, staging)
    if execute:
        done = execute_notebooks(book_root, staging, profile, only=only, log_output=log_output, dry_run=dry_run,
                                 jobs=default_jobs() if jobs is None else jobs)
        if only:  # a partial build renders the prose and the notebooks it executed, nothing stale
            prune_toc(staging / "_toc.yml", {d.source.relative_to(book_root).with_suffix("").as_posix() for d in done})
    # ``--path-output X`` writes to X/_build/html, so hand the build folder's parent
    output = build_dir.parent if build_dir.name == "_build" else build_dir
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(staging),
           "--config", str(staging / "_config.yml"), "--toc", str(staging / "_toc.yml"),  # we build a staged folder
           "--path-output", str(output), "-W", "-n", "--keep-going"]  # warnings are errors
    print("rendering:", " ".join(cmd[1:3]), "→", output / "_build" / "html", flush=True)
    proc = subprocess.run(cmd, cwd=staging, text=True, capture_output=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise MedlibError(f"jupyter-book build failed (warnings are errors):\n{tail}")
    index = output / "_build" / "html" / "index.html"
    if not index.is_file():
        raise MedlibError(f"jupyter-book reported success but {index} is missing")
    # GitHub Pages runs Jekyll unless told not to, and Jekyll drops _static/ and _vendor/ (leading "_")
    (index.parent / ".nojekyll").touch()
    print(f"book built in {time.perf_counter() - t0:.0f} s: {index}", flush=True)
    return index
