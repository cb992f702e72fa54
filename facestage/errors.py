"""Errors that carry a message meant for a person (the CLI prints them and exits 2)."""


class FacestageError(Exception):
    """Base class for errors with a clear, user-facing message."""


class InputError(FacestageError, ValueError):
    """Bad input: a missing file, a non-image, an empty video, a camera that isn't there."""


class ConfigError(FacestageError, ValueError):
    """An invalid configuration: unknown effect or parameter, value out of range, bad profile."""
