"""Small conveniences for the book's notebooks: the provenance banner and glued numbers.

Every executed page starts with :func:`start`, which resolves the profile, seeds
everything, picks the device and shows one provenance line (profile, data source, seed,
device, library versions), so every number on the page says what made it.

Glued values live two lives. Inside Jupyter Book (``myst_nb`` importable) :func:`glue` and
:func:`glue_figure` hand them to ``myst_nb.glue`` and the prose's ``{glue:}`` roles and
``{glue:figure}`` directives show them. Outside it — on Colab, under nbval, in a plain kernel —
those roles are raw text, so the values are shown in the cell's own output instead: a figure is
displayed, a number appears as one ``name = value`` line. The book's pages are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from medlib.profiles import Profile, get_profile, is_dry_run
from medlib.runtime import provenance, provenance_line, seed_everything, select_device

__all__ = ["NotebookRun", "start", "banner", "glue", "glue_figure", "fmt", "in_jupyter_book", "evaluated_epochs"]


@dataclass(frozen=True)
class NotebookRun:
    profile: Profile
    seed: int
    device: torch.device

    @property
    def provenance(self) -> dict:
        return provenance(self.profile, self.seed, self.device)


def banner(profile: Profile, seed: int, device: torch.device) -> str:
    """The provenance line, naming the profile by its label (``full (dry run)`` for a dry run)."""
    line = provenance_line(profile, seed, device)
    return line.replace(f"**{profile.name}**", f"**{profile.label}**", 1)


def start(profile: str | Profile = "auto", seed: int | None = None, *, show: bool = True) -> NotebookRun:
    """Resolve the profile, seed everything, choose the device and show the provenance line.

    Tables show their cells whole (pandas' ``display.max_colwidth`` lifted).

    ``seed=None`` (the notebooks' default) is the profile's first seed, so an analysis page shows
    the very models its profile's tables were made from.
    """
    import pandas as pd

    P = get_profile(profile, dry=is_dry_run())  # the one place a notebook's profile is resolved
    seed = P.first_seed if seed is None else int(seed)
    seed_everything(seed)
    pd.set_option("display.max_colwidth", None)  # a settings table's reasons are read whole, never cut at "…"
    device = select_device()
    if show:
        from IPython.display import Markdown, display

        display(Markdown("> " + banner(P, seed, device)))
    return NotebookRun(P, seed, device)


def _myst_glue():
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab, nbval, a plain kernel: no Jupyter Book to glue into
        return None
    return myst_glue


def in_jupyter_book() -> bool:
    """True when ``myst_nb`` is importable, i.e. glued values end up in the book's prose."""
    return _myst_glue() is not None


class _GluedText(str):
    """A glued string that reads as text on the page, not as its Python repr.

    ``myst_nb.glue`` stores what IPython displays: for a str that is only its repr (text/plain
    ``'55.0%'``), which ``{glue:}`` pastes quotes and all. This adds a text/markdown twin, which
    ``{glue:}`` prefers, with every ASCII punctuation mark backslash-escaped (CommonMark) so the
    text is shown verbatim; text/plain stays the repr that ``{glue:text}`` unquotes itself.
    """

    def _repr_markdown_(self) -> str:
        return re.sub(r"([!-/:-@\\[-`{-~])", r"\\\1", str(self))


def _is_figure(value) -> bool:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    return isinstance(value, Figure)


def glue(name: str, value, display: bool = False):
    """Glue ``value`` under ``name`` for the book; outside Jupyter Book, show it in the cell output.

    In the book this is ``myst_nb.glue`` (``display=True`` also shows the value in the cell).
    Without ``myst_nb`` a figure is displayed, a number or short text appears as a line
    ``name = value``, and anything else (a table) as that line followed by the object itself.
    Returns nothing, so a glue on a cell's last line adds no stray output.
    """
    myst_glue = _myst_glue()
    if myst_glue is not None:
        myst_glue(name, _GluedText(value) if isinstance(value, str) else value, display=display)
        return
    from IPython.display import display as show

    if _is_figure(value):
        show(value)
    elif isinstance(value, (str, int, float)) or (hasattr(value, "item") and getattr(value, "ndim", 1) == 0):
        print(f"{name} = {value}")
    else:
        print(f"{name} =")
        show(value)


def fmt(x: float, digits: int = 1, percent: bool = False) -> str:
    """Format a number for prose: ``fmt(0.7312, percent=True) == '73.1%'``."""
    return f"{100 * x:.{digits}f}%" if percent else f"{x:.{digits}f}"


def evaluated_epochs(history, column: str) -> str:
    """Which epochs of ``history`` (a frame with ``epoch``) have ``column``: what a curve can show.

    Trainings evaluate every ``eval_every`` epochs and after the last, so a caption must say
    which epochs its evaluation curve holds.
    """
    epochs = [int(e) for e in history.dropna(subset=[column])["epoch"]] if column in history else []
    if not epochs:
        return "no epoch"
    if len(epochs) == 1:
        return f"epoch {epochs[0]} only"
    if len(epochs) <= 6:
        return "epochs " + ", ".join(map(str, epochs[:-1])) + f" and {epochs[-1]}"
    return f"{len(epochs)} epochs: {epochs[0]}, {epochs[1]}, …, {epochs[-2]} and {epochs[-1]}"


def glue_figure(name: str, fig):
    """Glue a matplotlib figure for a ``{glue:figure}`` directive (which adds its caption) and close it.

    Outside Jupyter Book the figure is displayed in the cell first: on Colab it would vanish otherwise.
    """
    import matplotlib.pyplot as plt

    glue(name, fig, display=False)
    plt.close(fig)  # returns nothing, so the cell does not show the figure a second time
