"""Result files: where experiments write them and where the book reads them.

Experiments write ``$MEDLIB_HOME/results/<paper>/<name>-<profile>.json`` (with configuration and
provenance). A full-profile run can be *committed* to the repository as
``results/full/<paper>/<name>-full.json``; the results page then shows it in place of this
build's smoke numbers, and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medlib.paths import results_dir

__all__ = ["ResultFile", "find_result", "committed_results_dir"]


@dataclass(frozen=True)
class ResultFile:
    path: Path
    data: dict
    committed: bool  # True: a full-profile run committed to the repository

    @property
    def provenance(self) -> dict:
        return self.data.get("provenance", {})

    def describe(self) -> str:
        p = self.provenance
        where = "committed full-profile run" if self.committed else "this build"
        return (f"{where} · profile {p.get('profile', '?')} · data {p.get('data_source', '?')} · "
                f"seeds {p.get('seed', '?')} · device {p.get('device', '?')} · {p.get('date', '?')}")


def committed_results_dir(start: Path | None = None) -> Path | None:
    """``results/full`` of the book repository containing ``start`` (default: cwd), if any."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "results" / "full"
    return None


def find_result(paper: str, name: str, profile: str) -> ResultFile | None:
    """The committed full-profile result if there is one, else this build's, else ``None``."""
    committed = committed_results_dir()
    if committed is not None:
        path = committed / paper / f"{name}-full.json"
        if path.is_file():
            return ResultFile(path, json.loads(path.read_text()), True)
    path = results_dir() / paper / f"{name}-{profile}.json"
    if path.is_file():
        return ResultFile(path, json.loads(path.read_text()), False)
    return None
