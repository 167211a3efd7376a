"""Split one dataset into simulated hospitals ("sites") plus a held-out test set.

Paper A, Section 4.1: "we equally divided it into four parts to simulate the private data environment
held by different hospitals": ``method="equal"``. What the paper does not ask: ``"stratified"`` (equal
parts keeping the class ratios), ``"dirichlet"`` (label skew, Dirichlet(alpha) class shares per site,
Hsu et al., 2019; every site non-empty), ``"grouped"`` (no patient/case of ``groups`` spans two sites).
The test set is held out first, the same for every method given the seed (or ``test_seed``): stratified
by class, and whole groups when ``groups`` is given. 2-D labels (derm7pt) use column 0 (DIAG).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medlib.errors import MedlibError

__all__ = ["METHODS", "PartitionError", "SitePartition", "partition_sites", "grouped_holdout"]

METHODS = ("equal", "stratified", "dirichlet", "grouped")


class PartitionError(MedlibError, ValueError):
    """A partition request that cannot be met (too many sites, unknown method, ...)."""


@dataclass
class SitePartition:
    """Indices into the dataset: one array per site and one for the test set (all sorted)."""

    sites: list[np.ndarray]
    test: np.ndarray
    method: str
    seed: int
    labels: np.ndarray = field(repr=False)  # the stratification labels, for histogram/plot

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def train(self) -> np.ndarray:
        """Union of all sites: what "Full Training" in Paper A's tables trains on."""
        return np.sort(np.concatenate(self.sites))

    def site_names(self) -> list[str]:
        return [f"site {k + 1}" for k in range(self.n_sites)]

    def histogram(self, class_names: list[str] | None = None) -> pd.DataFrame:
        """Class counts: one row per site plus ``test``, one column per class."""
        n_classes = int(self.labels.max()) + 1 if self.labels.size else 0
        if class_names is None:
            class_names = [str(c) for c in range(n_classes)]
        elif len(class_names) < n_classes:
            raise PartitionError(f"{len(class_names)} class names given but labels go up to {n_classes - 1}; "
                                 "pass one name per class (e.g. ds.classes).")
        rows = [np.bincount(self.labels[idx], minlength=len(class_names)) for idx in [*self.sites, self.test]]
        return pd.DataFrame(rows, index=[*self.site_names(), "test"], columns=list(class_names))

    def plot(self, class_names: list[str] | None = None, ax=None):
        """Stacked bar chart of :meth:`histogram`; returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        table = self.histogram(class_names)
        if ax is None:
            fig, ax = plt.subplots(figsize=(1.2 * len(table) + 2.5, 3.2))
        else:
            fig = ax.figure
        table.plot.bar(stacked=True, ax=ax, rot=0, width=0.75)
        ax.set_ylabel("images")
        ax.set_title(f"{self.method} partition (seed {self.seed})")
        ax.legend(title="class", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize="small")
        fig.tight_layout()
        return fig


def _stratify_column(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[:, 0]  # derm7pt: DIAG
    if labels.ndim != 1:
        raise PartitionError(f"labels must be 1-D (N,) or 2-D (N, tasks); got shape {labels.shape}.")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise PartitionError("labels must be non-negative integer class indices (as ds.labels is).")
    return labels.astype(np.int64)


def largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total`` that round the real ``quotas`` fairly."""
    base = np.floor(quotas).astype(np.int64)
    short = total - base.sum()
    if short > 0:
        order = np.argsort(-(quotas - base), kind="stable")
        base[order[:short]] += 1
    return base


def _stratified_test(y: np.ndarray, test_fraction: float, rng: np.random.Generator,
                     n_test: int | None = None) -> np.ndarray:
    n_test = int(round(test_fraction * len(y))) if n_test is None else n_test
    test_fraction = n_test / max(len(y), 1)
    classes, counts = np.unique(y, return_counts=True)
    per_class = largest_remainder(counts * test_fraction, n_test)
    picked = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, per_class)]
    return np.concatenate(picked) if picked else np.empty(0, np.int64)


def _grouped_test(groups: np.ndarray, test_fraction: float, rng: np.random.Generator,
                  n_test: int | None = None, y: np.ndarray | None = None, restarts: int = 16) -> np.ndarray:
    """Whole groups for ``n_test`` (else ``test_fraction`` of all) items in the classes' overall proportions.

    From each of ``restarts`` random groups that fit, :func:`_grow`; the closest result wins. Without
    ``y`` all items count as one class (size only)."""
    target_size = test_fraction * len(groups) if n_test is None else n_test
    if target_size <= 0:
        return np.empty(0, np.int64)
    y = np.zeros(len(groups), np.int64) if y is None else y
    unique, inverse = np.unique(groups, return_inverse=True)
    order = rng.permutation(len(unique))  # ties go to the earlier group in this order
    counts = np.zeros((len(unique), int(y.max()) + 1 if y.size else 1))
    np.add.at(counts, (inverse, y), 1)  # items of each class in each group
    counts = counts[order]
    target = counts.sum(axis=0) * target_size / max(len(groups), 1)
    fits = np.flatnonzero(counts.sum(axis=1) <= target_size)
    starts = fits[:restarts] if fits.size else [int(np.argmin(counts.sum(axis=1)))]
    best = min((_grow(counts, target, start) for start in starts), key=lambda grown: grown[0])
    return np.flatnonzero(np.isin(inverse, order[best[1]]))


def _grow(counts: np.ndarray, target: np.ndarray, first: int) -> tuple[float, list[int]]:
    """From group ``first``, add the group that brings the class counts closest to ``target`` while
    one does; returns (squared error, chosen groups)."""
    chosen, total = [first], counts[first].copy()
    free = np.ones(len(counts), bool)
    free[first] = False
    while free.any():
        error = np.where(free, ((total + counts - target) ** 2).sum(axis=1), np.inf)
        pick = int(np.argmin(error))
        if error[pick] >= ((total - target) ** 2).sum():
            break
        chosen.append(pick)
        total += counts[pick]
        free[pick] = False
    return float(((total - target) ** 2).sum()), chosen


def _stratified(pool: np.ndarray, y: np.ndarray, n_sites: int, rng) -> list[np.ndarray]:
    # Lay the pool out class after class (each class shuffled) and deal it like cards:
    # site sizes differ by <= 1 and every class count differs by <= 1 between sites.
    order = np.concatenate([rng.permutation(pool[y[pool] == c]) for c in np.unique(y[pool])])
    offset = rng.integers(n_sites)  # so site 1 is not always the one that gets the extras
    return [order[(k + offset) % n_sites :: n_sites] for k in range(n_sites)]


def _dirichlet(pool: np.ndarray, y: np.ndarray, n_sites: int, alpha: float, rng, tries: int = 100) -> list[np.ndarray]:
    for _ in range(tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_sites)]
        for c in np.unique(y[pool]):
            members = rng.permutation(pool[y[pool] == c])
            shares = rng.dirichlet(np.full(n_sites, alpha))
            cuts = np.round(np.cumsum(shares)[:-1] * len(members)).astype(int)
            for k, chunk in enumerate(np.split(members, cuts)):
                parts[k].append(chunk)
        sites = [np.concatenate(p) for p in parts]
        if all(len(s) for s in sites):
            return sites
    # Very small alpha with few items: hand one item from the largest site to each empty one.
    for k in range(n_sites):
        if not len(sites[k]):
            donor = int(np.argmax([len(s) for s in sites]))
            sites[k], sites[donor] = sites[donor][:1], sites[donor][1:]
    return sites


def _grouped(pool: np.ndarray, groups: np.ndarray, n_sites: int, rng) -> list[np.ndarray]:
    # Largest groups first, each to the currently smallest site (greedy balancing);
    # the shuffle before the stable sort breaks ties between equal-size groups by seed.
    unique, inverse, sizes = np.unique(groups[pool], return_inverse=True, return_counts=True)
    if len(unique) < n_sites:
        raise PartitionError(f"method='grouped' needs at least one group per site, but the training pool has "
                             f"{len(unique)} groups for {n_sites} sites; use fewer sites or method='equal'.")
    shuffled = rng.permutation(len(unique))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    load = np.zeros(n_sites, np.int64)
    owner = np.empty(len(unique), np.int64)
    for g in order:
        k = int(np.argmin(load))
        owner[g] = k
        load[k] += sizes[g]
    return [pool[owner[inverse] == k] for k in range(n_sites)]


def grouped_holdout(groups, n_test: int | float, seed: int = 0, labels=None) -> np.ndarray:
    """Sorted indices of a held-out set of whole groups (cases, patients) of about ``n_test`` items (a count or
    a fraction), matching the classes' overall proportions when ``labels`` are given, else in size only."""
    groups = np.asarray(groups)
    y = None if labels is None else _stratify_column(labels)
    if isinstance(n_test, (float, np.floating)):
        if not 0.0 < n_test < 1.0:
            raise PartitionError(f"a fractional n_test must be in (0, 1), got {n_test!r}.")
        n_test = int(round(n_test * len(groups)))
    if not 0 < int(n_test) < len(groups):
        raise PartitionError(f"n_test must be between 1 and {len(groups) - 1} items, got {n_test!r}.")
    test = _grouped_test(groups, 0.0, np.random.default_rng(seed), n_test=int(n_test), y=y)
    return np.sort(test).astype(np.int64)


def partition_sites(labels, n_sites: int, method: str = "equal", groups=None, seed: int = 0,
                    test_fraction: float = 0.2, alpha: float = 0.5, test_size: int | None = None, test_indices=None,
                    test_seed: int | None = None) -> SitePartition:
    """Hold out a test set, then split the rest into ``n_sites`` disjoint sites (sorted indices, seeded).

    Paper A, Section 4.1 (``method="equal"``, ``n_sites=4``). ``test_size`` (a count; the paper's test
    sets are about 181, 189 and 256 images) replaces ``test_fraction``; ``test_indices`` fixes the test set
    (an official split); ``test_seed`` draws it with its own seed, shared by runs differing in ``seed``.
    """
    y = _stratify_column(labels)
    n = len(y)
    if method not in METHODS:
        raise PartitionError(f"unknown partition method {method!r}; expected one of {', '.join(METHODS)}.")
    if not isinstance(n_sites, (int, np.integer)) or n_sites < 1:
        raise PartitionError(f"n_sites must be a positive integer, got {n_sites!r}.")
    if not 0.0 <= test_fraction < 1.0:
        raise PartitionError(f"test_fraction must be in [0, 1), got {test_fraction!r}.")
    if method == "dirichlet" and not alpha > 0:
        raise PartitionError(f"alpha must be > 0 for method='dirichlet', got {alpha!r}.")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise PartitionError(f"groups must have one entry per item, shape ({n},); got {groups.shape}.")
    elif method == "grouped":
        raise PartitionError("method='grouped' needs groups= (patient or case ids, e.g. ds.groups); this dataset "
                             "passed none. Use method='equal' or 'stratified' for data without patient ids.")

    if test_size is not None and not 0 <= int(test_size) < n:
        raise PartitionError(f"test_size must be between 0 and {n - 1} items, got {test_size!r}.")
    rng = np.random.default_rng(seed)
    test_rng = rng if test_seed is None else np.random.default_rng(test_seed)
    if test_indices is not None:
        test = np.unique(np.asarray(test_indices, dtype=np.int64))
        if test.size and (test[0] < 0 or test[-1] >= n):
            raise PartitionError(f"test_indices must index the {n} items; got values from {test[0]} to {test[-1]}.")
    elif groups is not None:
        test = _grouped_test(groups, test_fraction, test_rng, n_test=test_size, y=y)
    else:
        test = _stratified_test(y, test_fraction, test_rng, n_test=test_size)
    pool = np.setdiff1d(np.arange(n), test)
    if n_sites > len(pool):
        raise PartitionError(f"cannot make {n_sites} non-empty sites from {len(pool)} training items "
                             f"({n} items, {len(test)} held out for test); use fewer sites or a smaller test_fraction.")
    if method == "equal":
        sites = np.array_split(rng.permutation(pool), n_sites)
    elif method == "stratified":
        sites = _stratified(pool, y, n_sites, rng)
    elif method == "dirichlet":
        sites = _dirichlet(pool, y, n_sites, alpha, rng)
    else:
        sites = _grouped(pool, groups, n_sites, rng)
    return SitePartition([np.sort(s).astype(np.int64) for s in sites], np.sort(test).astype(np.int64), method, seed, y)
