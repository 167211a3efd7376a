"""``medlib runs plan|execute``: registered by the main parser; the commands live in :mod:`medlib.runs.commands`."""

from medlib.runs.commands import cmd_execute, cmd_plan, register

__all__ = ["register", "cmd_plan", "cmd_execute"]
