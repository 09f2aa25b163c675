"""PNG writing."""

import numpy as np

from . import _errors
from ._errors import check
from ._lib import c_uint8_p, lib
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
