"""The few exception types l2h raises; the CLI prints them without a traceback."""


class L2HError(Exception):
    """Base class: a problem the user can fix, described in the message."""


class ConfigError(L2HError):
    """A configuration key is unknown, of the wrong type, or points to a missing file."""


class InputError(L2HError):
    """An input file is missing, unreadable, empty or inconsistent (CRS, bands, extent)."""
