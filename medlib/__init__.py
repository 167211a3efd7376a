"""medlib — the library behind the medlib book.

Reproduces two medical-imaging papers:

* Paper A (Tian et al., 2024): merging hospitals' fine-tuned models with *data vectors*
  (:mod:`medlib.vectors`, :mod:`medlib.bn`, :mod:`medlib.train`).
* Paper B (Tang & Lasser, 2024): asymmetric multi-modal fusion for multi-label skin
  lesion classification (:mod:`medlib.ammfm`).

Notebooks teach and show; this package computes. It never imports from notebooks.
"""

__version__ = "0.1.0"
