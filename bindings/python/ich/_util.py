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
