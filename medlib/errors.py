"""Errors a user can fix. The CLI prints their message without a traceback (exit code 2)."""


class MedlibError(Exception):
    """Something the user can fix: the message says what was wrong, what was expected, and how to fix it."""


class DataError(MedlibError, ValueError):
    """A dataset on disk is missing, incomplete or malformed."""


class WeightsFileError(MedlibError, ValueError):
    """A weights file that medlib refuses to load (a pickle, no metadata, unreadable)."""


class ProfileError(MedlibError, ValueError):
    """An unknown profile name (``--profile``, ``$MEDLIB_PROFILE``, a notebook's parameters cell)."""
