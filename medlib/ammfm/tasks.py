"""The eight tasks of the seven-point checklist (paper B, Table 1): diagnosis and seven criteria."""

from __future__ import annotations

__all__ = ["TASKS", "TASK_CLASSES", "NUM_CLASSES", "AUC_CATEGORIES", "MELANOMA_CATEGORIES"]

TASKS: tuple[str, ...] = ("DIAG", "PN", "STR", "PIG", "RS", "DaG", "BWV", "VS")

# Class order per task (index = label value). Metrics look classes up by name, so a
# dataset whose ``tasks`` mapping orders them differently can pass its own mapping.
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "DIAG": ("BCC", "NEV", "MEL", "MISC", "SK"),
    "PN": ("ABS", "TYP", "ATP"),
    "STR": ("ABS", "REG", "IR"),
    "PIG": ("ABS", "REG", "IR"),
    "RS": ("ABS", "PRS"),
    "DaG": ("ABS", "REG", "IR"),
    "BWV": ("ABS", "PRS"),
    "VS": ("ABS", "REG", "IR"),
}

NUM_CLASSES: tuple[int, ...] = tuple(len(TASK_CLASSES[t]) for t in TASKS)  # (5, 3, 3, 3, 2, 3, 2, 3)

# The 17 (task, category) columns whose one-vs-rest AUC Table 2 (and Table 8) reports: every class
# but "absent" (ABS); "AVG AUC" in this library is their plain mean.
AUC_CATEGORIES: tuple[tuple[str, str], ...] = tuple((t, c) for t in TASKS for c in TASK_CLASSES[t] if c != "ABS")

# The melanoma-related category of each task (Table 4): AUC, precision, sensitivity, specificity.
MELANOMA_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("DIAG", "MEL"), ("PN", "ATP"), ("STR", "IR"), ("PIG", "IR"),
    ("RS", "PRS"), ("DaG", "IR"), ("BWV", "PRS"), ("VS", "IR"),
)
