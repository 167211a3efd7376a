"""What the chapters call: the dataset a profile asks for (``data``), Paper A's and Paper B's experiments
(``paper_a``, ``paper_b``) and the Beyond chapter (``beyond``); trained models are cached by what determines
them under ``$MEDLIB_HOME/artifacts``, results written as JSON with their provenance."""
