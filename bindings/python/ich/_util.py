"""Small helpers shared by the ich modules."""

import os

INT32_MAX = 2**31 - 1


def fspath_bytes(path):
    """Encode a str, bytes or os.PathLike path for a C ``const char *``."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        return path
    return os.fsencode(path)


def c_string(value, name):
    """Encode an optional str for a C ``const char *`` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        raise TypeError("%s must be a str or None, not %s" % (name, type(value).__name__))
    if b"\0" in data:
        raise ValueError("%s must not contain NUL characters" % name)
    return data


class OwnedHandle:
    """Base of the classes that own one C handle (``self._handle``, a
    ``ctypes.c_void_p``): :meth:`close` frees it with the class's ``_free``
    C function (idempotent), as does garbage collection; usable as a context
    manager. A closed object raises ``InvalidArgumentError`` when used."""

    _free = None  # the C free function, set by each subclass
    _handle = None

    def close(self):
        """Free the C object now (idempotent); the object cannot be used
        afterwards."""
        handle, self._handle = self._handle, None
        if handle is not None and handle.value:
            type(self)._free(handle)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if not self._handle:
            from . import _errors
            raise _errors.error(_errors.ERR_INVALID_ARGUMENT,
                                "this ich.%s is closed" % type(self).__name__)
        return self._handle
