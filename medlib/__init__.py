"""medlib, the library behind the medlib book; it computes, the notebooks teach and show (it never imports them).

Paper A (Tian et al., 2024): merging hospitals' fine-tuned models with *data vectors* (:mod:`medlib.vectors`,
:mod:`medlib.bn`, :mod:`medlib.train`). Paper B (Tang & Lasser, 2024): asymmetric multi-modal fusion for
multi-label skin lesion classification (:mod:`medlib.ammfm`).
"""

__version__ = "0.1.0"
