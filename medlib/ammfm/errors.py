"""The error AMMFM code raises for a configuration the user can fix."""

from medlib.errors import MedlibError


class ConfigError(MedlibError, ValueError):
    """A model, loss or search was asked for something it cannot do (the message says what to pass instead)."""
