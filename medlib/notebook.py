"""Small conveniences for the book's notebooks: the provenance banner and glued numbers.

Every executed page starts with :func:`start`, which resolves the profile, seeds
everything, picks the device and shows one provenance line (profile, data source, seed,
device, library versions), so every number on the page says what made it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medlib.profiles import Profile, get_profile
from medlib.runtime import provenance, provenance_line, seed_everything, select_device

__all__ = ["NotebookRun", "start", "glue", "glue_figure", "fmt"]


@dataclass(frozen=True)
class NotebookRun:
    profile: Profile
    seed: int
    device: torch.device

    @property
    def provenance(self) -> dict:
        return provenance(self.profile, self.seed, self.device)


def start(profile: str = "auto", seed: int = 0, *, show: bool = True) -> NotebookRun:
    """Resolve the profile, seed everything, choose the device and show the provenance line."""
    P = get_profile(profile)
    seed_everything(seed)
    device = select_device()
    if show:
        from IPython.display import Markdown, display

        display(Markdown("> " + provenance_line(P, seed, device)))
    return NotebookRun(P, seed, device)


def glue(name: str, value, display: bool = False):
    """``myst_nb.glue`` when available (inside the book), a no-op otherwise (plain Python)."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # running outside Jupyter Book's environment: nothing to glue into
        return
    _glue(name, value, display=display)  # returns nothing: a last-line glue shows no stray output


def fmt(x: float, digits: int = 1, percent: bool = False) -> str:
    """Format a number for prose: ``fmt(0.7312, percent=True) == '73.1%'``."""
    return f"{100 * x:.{digits}f}%" if percent else f"{x:.{digits}f}"


def glue_figure(name: str, fig):
    """Glue a matplotlib figure for a ``{glue:figure}`` directive (which adds its caption) and close it."""
    import matplotlib.pyplot as plt

    glue(name, fig, display=False)
    plt.close(fig)  # returns nothing, so the cell does not show the figure a second time
