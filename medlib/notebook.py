"""The notebooks' helpers: :func:`start` (profile, seed, device, provenance banner) and :func:`glue`, which feeds
the prose's ``{glue:}`` roles in Jupyter Book and shows the value in the cell elsewhere (Colab, nbval)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from medlib.profiles import Profile, get_profile, is_dry_run
from medlib.runtime import provenance, seed_everything, select_device


@dataclass(frozen=True)
class NotebookRun:
    profile: Profile
    seed: int
    device: torch.device

    @property
    def provenance(self) -> dict:
        return provenance(self.profile, self.seed, self.device)


def banner(profile: Profile, seed: int, device: torch.device) -> str:
    """The provenance line at the top of every executed page, naming the profile by its label."""
    p = provenance(profile, seed, device)
    v = p["versions"]
    return (f"Profile **{profile.label}** · data: {p['data_source']} · seed: {p['seed']} · device: {p['device']} · "
            f"medlib {v['medlib']}, torch {v['torch']}, torchvision {v['torchvision']}, timm {v['timm']} · {p['date']}")


def start(profile: str | Profile = "auto", seed: int | None = None, *, show: bool = True) -> NotebookRun:
    """Resolve the profile (the one place a notebook does), seed everything, choose the device, show the banner.
    ``seed=None`` is the profile's first seed: an analysis page shows the very models its tables were made from."""
    import pandas as pd

    P = get_profile(profile, dry=is_dry_run())
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
    """A glued string that reads as text, not as the repr (quotes and all) ``myst_nb`` stores: its text/markdown,
    which ``{glue:}`` prefers, escapes ASCII punctuation (CommonMark); ``{glue:text}`` unquotes the repr itself."""

    def _repr_markdown_(self) -> str:
        return re.sub(r"([!-/:-@\\[-`{-~])", r"\\\1", str(self))


def glue(name: str, value, display: bool = False):
    """Glue ``value`` under ``name`` for the book; outside Jupyter Book show it: a figure, ``name = value`` for a
    number or text, else ``name =`` and the object. Returns nothing: a cell's last line adds no output."""
    myst_glue = _myst_glue()
    if myst_glue is not None:
        myst_glue(name, _GluedText(value) if isinstance(value, str) else value, display=display)
        return
    from IPython.display import display as show
    from matplotlib.figure import Figure

    if isinstance(value, Figure):
        show(value)
    elif isinstance(value, (str, int, float)) or (hasattr(value, "item") and getattr(value, "ndim", 1) == 0):
        print(f"{name} = {value}")
    else:
        print(f"{name} =")
        show(value)


def glue_figure(name: str, fig):
    """Glue a matplotlib figure for a ``{glue:figure}`` directive and close it (outside the book: shown first)."""
    import matplotlib.pyplot as plt

    glue(name, fig, display=False)
    plt.close(fig)  # returns nothing, so the cell does not show the figure a second time


def fmt(x: float, digits: int = 1, percent: bool = False) -> str:
    """Format a number for prose: ``fmt(0.7312, percent=True) == '73.1%'``."""
    return f"{100 * x:.{digits}f}%" if percent else f"{x:.{digits}f}"


def evaluated_epochs(history, column: str) -> str:
    """Which epochs of ``history`` (a frame with ``epoch``) have ``column``: trainings evaluate every
    ``eval_every`` epochs and after the last, so a curve's caption says which epochs it holds."""
    epochs = [int(e) for e in history.dropna(subset=[column])["epoch"]] if column in history else []
    if not epochs:
        return "no epoch"
    if len(epochs) == 1:
        return f"epoch {epochs[0]} only"
    if len(epochs) <= 6:
        return "epochs " + ", ".join(map(str, epochs[:-1])) + f" and {epochs[-1]}"
    return f"{len(epochs)} epochs: {epochs[0]}, {epochs[1]}, …, {epochs[-2]} and {epochs[-1]}"
