"""The package's errors: one base class, one subclass per kind of fault.

Every error derives from :class:`EdxtomoError`, itself a :class:`ValueError`,
so ``except ValueError`` keeps working. Messages are one line that starts
with the file or folder concerned and says what is wrong with it; the
command line prints them after ``edxtomo: error:`` and exits with status 2.
"""

from __future__ import annotations


class EdxtomoError(ValueError):
    """Base of every error edxtomo raises on purpose; the message names the file and the cause."""


class InputError(EdxtomoError):
    """Input files are missing, unreadable, damaged or inconsistent; the message names the file."""


class DamagedFileError(InputError):
    """A file is damaged or truncated: its container or its contents do not add up.

    Attributes
    ----------
    path
        The damaged file.
    """

    def __init__(self, path: object, detail: str) -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{path}: damaged or truncated file ({detail})")

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.detail))


class OutputError(EdxtomoError):
    """The output folder cannot be used: it is a file, not writable, the input, or locked."""


class ResourceError(EdxtomoError):
    """A request would need more memory (or another resource) than the machine has."""


__all__ = ["DamagedFileError", "EdxtomoError", "InputError", "OutputError", "ResourceError"]
