"""Whole experiments, one function per table: what the book's notebooks call.

* :mod:`medlib.experiments.data` — the dataset a profile asks for (synthetic stand-in or the
  real download), its cached image tensor and its hospital partition.
* :mod:`medlib.experiments.paper_a` — Paper A's Tables 1–3, Figure 2 and the λ sweep.
* :mod:`medlib.experiments.paper_b` — Paper B's Tables 2–10.

Trained models are cached by a hash of their configuration under ``$MEDLIB_HOME/artifacts``,
so notebooks that need the same model share it, and every result is written as JSON with
its configuration and provenance.
"""
