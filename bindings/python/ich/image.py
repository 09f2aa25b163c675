"""PNG writing and reading."""

import ctypes

import numpy as np

from . import _errors
from ._errors import check
from ._lib import _declare, c_uint8_p, lib
from ._util import INT32_MAX, fspath_bytes


def write_png(path, array):
    """Write an 8-bit PNG at `path` (atomically).

    `array` is uint8, either 2-D (rows, columns) for gray or 3-D (rows,
    columns, channels) with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)
    channels, the layout :meth:`Window.apply` returns. Raises TypeError for
    another dtype and :class:`IchError` for a bad shape (``ShapeError``) or
    channel count and size (``InvalidArgumentError``), or when the file
    cannot be written (``IchIOError``).
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise TypeError("write_png: array must be uint8, not %s" % arr.dtype)
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    if arr.ndim != 3:
        raise _errors.error(_errors.ERR_SHAPE,
                            "write_png: array must be 2-D (gray) or 3-D (rows, columns, "
                            "channels), got shape %s" % (arr.shape,))
    if max(arr.shape) > INT32_MAX:
        raise _errors.error(_errors.ERR_SHAPE, "write_png: array too large: %s" % (arr.shape,))
    arr = np.ascontiguousarray(arr)
    height, width, channels = arr.shape
    check(lib.ich_png_write(fspath_bytes(path), arr.ctypes.data_as(c_uint8_p),
                            width, height, channels))


_declare("ich_png_read", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(c_uint8_p),
         ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32),
         ctypes.POINTER(ctypes.c_int32))
_declare("ich_free", None, ctypes.c_void_p)


def read_png(path):
    """Read an 8-bit PNG: a uint8 array (rows, columns) for gray files and
    (rows, columns, channels) with 2 (gray + alpha), 3 (RGB) or 4 (RGBA)
    channels otherwise, as :func:`write_png` takes it. Palette files come
    out as RGB(A), 16-bit files are reduced to 8 bits.

    Raises ``IchIOError`` when the file cannot be opened and ``FormatError``
    (naming the file) when it is not a PNG, truncated or corrupt (chunk CRCs
    are checked).
    """
    pixels = c_uint8_p()
    width = ctypes.c_int32()
    height = ctypes.c_int32()
    channels = ctypes.c_int32()
    check(lib.ich_png_read(fspath_bytes(path), ctypes.byref(pixels), ctypes.byref(width),
                           ctypes.byref(height), ctypes.byref(channels)))
    try:
        shape = (height.value, width.value, channels.value)
        count = shape[0] * shape[1] * shape[2]
        array = np.ctypeslib.as_array(pixels, shape=(count,)).copy().reshape(shape)
    finally:
        lib.ich_free(pixels)
    return array[:, :, 0] if shape[2] == 1 else array
