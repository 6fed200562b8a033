"""The one error type for configuration: every setting problem, wherever it is found, is a ``SettingsError``."""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and what is wrong, never its value
    when that could be a secret."""
