"""Errors that skytriage raises for bad input, with the file and the cause in one line."""

from __future__ import annotations

import os


class SkytriageInputError(ValueError):
    """An input that skytriage cannot use.

    Parameters
    ----------
    path : str or os.PathLike
        The file or folder at fault, as the user gave it.
    cause : str
        What is wrong with it, in a few words (no trailing full stop).

    The message is one line, ``"<path>: <cause>"``, fit for a terminal and for the
    ``failed`` list of ``summary.json``.
    """

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = os.fspath(path)
        self.cause = " ".join(str(cause).split())
        super().__init__(f"{self.path}: {self.cause}")


class SkytriageUsageError(ValueError):
    """A command was called with options that cannot work together (exit code 2)."""
