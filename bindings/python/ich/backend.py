"""Where models run: the CPU or a GPU (libich's ``ich/backend.h``).

The CUDA backend is a plugin (``libich-cuda.so``) that libich loads at run
time; without a GPU, a driver or the plugin everything runs on the CPU.
A model runs on the backend chosen when it was created or loaded
(:attr:`ich.Model.backend`); checkpoints move freely between backends.

The choice: the last :func:`use_backend`, else the ``ICH_BACKEND``
environment variable, else ``"auto"`` (the GPU when it can start, else the
CPU)::

    import ich
    ich.use_backend("auto")
    print(ich.backend(), "-", ich.backend_info())
"""

import ctypes

from . import _errors
from ._errors import check
from ._lib import c_status, lib, _declare
from ._util import c_string

__all__ = ["backend", "use_backend", "backend_info"]

_declare("ich_backend_select", c_status, ctypes.c_char_p)
_declare("ich_backend_name", ctypes.c_char_p)
_declare("ich_backend_describe", c_status, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)


def backend():
    """Name of the backend new models use: ``"cpu"`` or ``"cuda"``. Raises
    when ``ICH_BACKEND`` names a backend that cannot start here."""
    name = lib.ich_backend_name()
    if name is None:
        # The same failure again, with its status code and message.
        text = ctypes.create_string_buffer(1024)
        check(lib.ich_backend_describe(None, text, len(text)))
        raise _errors.error(_errors.ERR_INTERNAL, "ich_backend_name failed without a reason")
    return name.decode("ascii")


def use_backend(name="auto"):
    """Choose where new models run: ``"auto"``, ``"cpu"`` or ``"cuda"``
    (``None``: re-read ``ICH_BACKEND``). Raises :class:`ich.NotFoundError`
    when the CUDA plugin is not found and :class:`ich.UnsupportedError` when
    it cannot start (no GPU, no driver, a plugin built for another libich),
    the message saying why; the previous choice then stays. Returns the
    backend now in use."""
    check(lib.ich_backend_select(c_string(name, "name")))
    return backend()


def backend_info(name=None):
    """One line on a backend (device, library versions, math mode), starting
    it if needed without choosing it; ``None``: the backend new models use.
    Raises as :func:`use_backend` would, so it tells whether and why not a
    backend can run here."""
    text = ctypes.create_string_buffer(1024)
    check(lib.ich_backend_describe(c_string(name, "name"), text, len(text)))
    return text.value.decode("utf-8", "replace")
