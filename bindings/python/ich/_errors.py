"""Exceptions raised by the ich package, one per libich status code."""

import errno as _errno
import os

from ._lib import lib

# Status codes of include/ich/core.h (values are stable).
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_NO_MEMORY = 2
ERR_IO = 3
ERR_FORMAT = 4
ERR_UNSUPPORTED = 5
ERR_NOT_FOUND = 6
ERR_SHAPE = 7
ERR_INTERNAL = 8
ERR_CANCELLED = 9


def status_string(status):
    """Return the constant name of a libich status code, e.g. "ICH_ERR_IO"."""
    return lib.ich_status_string(int(status)).decode("ascii", "replace")


class IchError(Exception):
    """A libich call failed.

    Attributes:
        status: the ich_status code (int, never 0).
        status_name: its constant name, e.g. "ICH_ERR_FORMAT".
        message: what failed and where, from ich_last_error() (it names the
            file for file operations).

    The subclasses below are raised for the matching status codes, and also
    derive from the closest built-in exception, so ``except OSError`` or
    ``except ValueError`` work as one would expect.
    """

    status = None

    def __init__(self, status, message=""):
        self.status = int(status)
        self.status_name = status_string(self.status)
        self.message = message
        super().__init__(self.__str__())

    def __str__(self):
        if self.message:
            return "%s: %s" % (self.status_name, self.message)
        return self.status_name

    def __reduce__(self):
        return (_make_error, (self.status, self.message))


class InvalidArgumentError(IchError, ValueError):
    """ICH_ERR_INVALID_ARGUMENT: a bad argument or option."""


class NoMemoryError(IchError, MemoryError):
    """ICH_ERR_NO_MEMORY: an allocation failed."""


class IchIOError(IchError, OSError):
    """ICH_ERR_IO: a file could not be opened, read, written or renamed."""


class FormatError(IchError, ValueError):
    """ICH_ERR_FORMAT: malformed input (not DICOM, truncated, no pixel data)."""


class UnsupportedError(IchError):
    """ICH_ERR_UNSUPPORTED: valid input that libich does not handle
    (colour or multi-frame DICOM, for instance)."""


class NotFoundError(IchError, LookupError):
    """ICH_ERR_NOT_FOUND: a named item (preset, column, ...) does not exist."""


class ShapeError(IchError, ValueError):
    """ICH_ERR_SHAPE: an array has the wrong size or shape."""


class InternalError(IchError, RuntimeError):
    """ICH_ERR_INTERNAL: a bug in libich; please report it."""


class CancelledError(IchError):
    """ICH_ERR_CANCELLED: a progress (or file) callback asked the call to
    stop by returning True. Ctrl-C during a long call raises
    KeyboardInterrupt instead (see ``ich._cancel``)."""


class IchFileNotFoundError(IchIOError, FileNotFoundError):
    """ICH_ERR_IO for a file or folder that does not exist: also a
    FileNotFoundError, with ``errno`` ENOENT and ``filename`` the path."""


class MissingFileError(NotFoundError, FileNotFoundError):
    """ICH_ERR_NOT_FOUND for a file that does not exist (a checkpoint to
    resume from, say): also a FileNotFoundError, with ``errno`` ENOENT and
    ``filename`` the path when the message names it."""


_BY_STATUS = {
    ERR_INVALID_ARGUMENT: InvalidArgumentError,
    ERR_NO_MEMORY: NoMemoryError,
    ERR_IO: IchIOError,
    ERR_FORMAT: FormatError,
    ERR_UNSUPPORTED: UnsupportedError,
    ERR_NOT_FOUND: NotFoundError,
    ERR_SHAPE: ShapeError,
    ERR_INTERNAL: InternalError,
    ERR_CANCELLED: CancelledError,
}

#: The class for a missing file, by status.
_MISSING = {ERR_IO: IchFileNotFoundError, ERR_NOT_FOUND: MissingFileError}

# libich names a failed system call as "PATH: cannot open: <strerror>"; the
# C API has no errno, so a missing file is recognised by the text of
# strerror(ENOENT), which os.strerror() gets from the same C library.
_ENOENT_TEXT = ": " + os.strerror(_errno.ENOENT)


def _missing_path(message):
    """The path of a "PATH: cannot ...: No such file or directory" message;
    "" when the message is about a missing file without that form; None
    when it is not about a missing file."""
    if not message.endswith(_ENOENT_TEXT):
        return None
    head = message[:-len(_ENOENT_TEXT)]
    cut = head.find(": cannot ")
    return head[:cut] if cut > 0 else ""


def _make_error(status, message):
    status = int(status)
    cls = _MISSING.get(status)
    path = _missing_path(message) if cls is not None else None
    if path is None:
        return _BY_STATUS.get(status, IchError)(status, message)
    exc = cls(status, message)
    exc.errno = _errno.ENOENT
    exc.strerror = os.strerror(_errno.ENOENT)
    exc.filename = path or None
    return exc


def check(status):
    """Raise the IchError matching `status` (with ich_last_error()) unless 0."""
    if status != OK:
        message = lib.ich_last_error().decode("utf-8", "replace")
        raise _make_error(status, message)


def error(status, message):
    """Build (not raise) an IchError for a check done on the Python side."""
    return _make_error(status, message)
