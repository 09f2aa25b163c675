"""Image IDs as file names, and the files of a folder (``<ich/files.h>``).

``ich.image_path(folder, id, ".dcm")`` is the one rule every libich call
uses to turn an image ID from a label CSV into a file inside a folder: it
refuses IDs that would leave the folder (``"../x"``, ``"/etc/passwd"``,
``"a/../../b"``), control characters and overlong names.
``ich.find_files(folder)`` lists every regular file under a folder once:
symbolic links are followed, but links to ``"."`` or to a parent cannot
make it loop, and FIFOs, devices and sockets are reported, never opened.
"""

import ctypes
import os

from . import _errors
from ._cancel import Interruptible
from ._errors import check
from ._lib import _declare, c_status, lib
from ._util import c_string, fspath_bytes

__all__ = ["image_path", "find_files", "WALK_HIDDEN"]

#: :func:`find_files` flag of the C API (``ICH_WALK_HIDDEN``).
WALK_HIDDEN = 1

_FILE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                            ctypes.c_char_p)

_declare("ich_image_path", c_status, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(ctypes.c_void_p))
_declare("ich_files_walk", c_status, ctypes.c_char_p, ctypes.c_uint32, _FILE_FN,
         ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64))
_declare("ich_free", None, ctypes.c_void_p)


def _text(value):
    return os.fsdecode(value)


def image_path(folder, image_id, extension=".dcm"):
    """The file of `image_id` in `folder`: ``"<folder>/<id><extension>"``
    as a str, after the check every libich call makes. IDs may hold
    folders (``"P1/scan1/IM4"``). Raises ``FormatError`` (naming the ID and
    why) for an ID that cannot name a file inside the folder: empty,
    absolute, with a ``"."``, ``".."`` or empty component, a control
    character (NUL included), more than 1024 bytes, or a file name over
    255 bytes; and ``InvalidArgumentError`` for an extension holding a
    ``/``.
    """
    ident = os.fsencode(image_id)
    if b"\0" in ident:  # C would see the ID cut at the NUL
        raise _errors.error(_errors.ERR_FORMAT, "ID %r cannot name a file inside %s: it holds "
                            "a NUL character" % (image_id, _text(folder)))
    ext = None if extension is None else c_string(extension, "extension")
    out = ctypes.c_void_p()
    check(lib.ich_image_path(fspath_bytes(folder), ident, ext, ctypes.byref(out)))
    try:
        return _text(ctypes.string_at(out.value))
    finally:
        lib.ich_free(out)


def find_files(folder, hidden=False):
    """Every regular file under `folder`, each real file once.

    Returns ``(paths, skipped)``: `paths` are str paths ``folder/...``
    (each folder's entries in name order; what is reached only through a
    symbolic link comes after the rest, so a file keeps its real path when
    it has one); `skipped` lists ``(path, reason)`` for what was not
    visited: FIFOs, devices and sockets (never opened), broken or looping
    symbolic links, unreadable folders. With `hidden`, names beginning
    with ``.`` are visited too. Raises ``IchIOError`` when `folder` is not
    a readable folder.
    """
    paths, skipped = [], []

    def visit(user, path, relative, reason):
        if reason is None:
            paths.append(_text(path))
        else:
            skipped.append((_text(path), reason.decode("utf-8", "replace")))
        return False

    # Interruptible: Ctrl-C during a long walk stops it (KeyboardInterrupt),
    # and an exception in visit() stops it and is raised again.
    with Interruptible(visit) as guard:
        callback = _FILE_FN(guard.wrap())
        status = lib.ich_files_walk(fspath_bytes(folder), WALK_HIDDEN if hidden else 0,
                                    callback, None, None)
    guard.check(status)
    return paths, skipped
