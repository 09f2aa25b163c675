"""HU windows: map Hounsfield units to clinical windows, resize, normalise."""

import ctypes
import numbers

import numpy as np

from . import _errors
from ._errors import check
from ._lib import c_float_p, c_uint8_p, lib
from ._util import OwnedHandle, INT32_MAX, fspath_bytes

_MODES = {"linear": 0, "minmax": 1}
_RESIZE = {"bilinear": 0, "area": 1, "antialias": 2}
_MODE_NAMES = {v: k for k, v in _MODES.items()}
_RESIZE_NAMES = {v: k for k, v in _RESIZE.items()}
_MAX_CHANNELS = 16
_STRING_MAX = 2048

#: The tutorial's preprocessing: raw min-max (no window), the uint8 step,
#: Pillow's antialiased bilinear resize to 512, Normalize(0.380, 0.236).
TUTORIAL_RECIPE = ("windows=none;mode=minmax;size=512x512;resize=antialias;quantize=1;"
                   "mean=0.38;std=0.236;neighbors=0")


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _int32(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid("%s must be an integer, not %r" % (name, value))
    value = int(value)
    if not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise _invalid("%s out of range: %d" % (name, value))
    return value


def window_preset(name):
    """Return the (center, width) in HU of a preset window, e.g.
    ``window_preset("blood") == (75.0, 215.0)``.

    Presets (case-insensitive): brain 40/80, subdural 80/200, blood 75/215,
    bone 600/2800, stroke 40/40, soft_tissue (or soft) 40/350. Raises
    ``NotFoundError`` (an :class:`IchError` and a LookupError) for an
    unknown name.
    """
    if not isinstance(name, str):
        raise TypeError("window_preset: name must be a str")
    center = ctypes.c_float()
    width = ctypes.c_float()
    check(lib.ich_window_preset(name.encode("utf-8"), ctypes.byref(center),
                                ctypes.byref(width)))
    return (center.value, width.value)


def _is_number_pair(item):
    return (not isinstance(item, (str, bytes)) and len(item) == 2
            and all(isinstance(v, numbers.Real) for v in item))


class Window(OwnedHandle):
    """A windowing recipe: HU slice -> one channel per window -> resize ->
    8-bit image or normalised float32 tensor.

    Arguments:
        windows: the windows, one output channel each: a comma-separated
            string of preset names and "center/width" pairs
            (``"blood,brain,bone"``, ``"40/80,600/2800"``), or a sequence of
            such strings and (center, width) tuples. None (or "") means no
            windows, which only the "minmax" mode accepts (one channel).
        size: output size; None or 0 keeps each slice's size, an int N
            gives N x N, a (rows, columns) tuple gives that size.
        resize: "bilinear" (half-pixel centres, as PyTorch's
            ``interpolate(align_corners=False)``), "area" (mean of the
            covered input area, as OpenCV's INTER_AREA) or "antialias"
            (Pillow's ``Image.resize(BILINEAR)``, antialiased when
            shrinking, as torchvision's ``Resize`` on a PIL image).
        mode: "linear" (``clip((hu - lo) / width, 0, 1)``, lo = center -
            width / 2) or "minmax" (clip to the window, then scale the
            slice's min..max to 0..1, as the tutorial does).
        mean, std: per-channel normalisation of the float32 output,
            ``(v - mean) / std``: a float (all channels) or one value per
            channel. None for both means no normalisation; if only one is
            given the other defaults to 0 (mean) or 1 (std).
        quantize: the tutorial's uint8 step: ``trunc(v * 255)`` before the
            resize, the resize on 8-bit values rounded as Pillow does, then
            ``/ 255`` (ToTensor) before the normalisation.
        neighbors: neighbouring slices on each side that a dataset stacks
            as extra channels (only recorded, so that the recipe's text
            describes a network's whole input; :meth:`apply` ignores it).

    ``Window.from_string(text)`` and ``str(window)`` convert to and from the
    recipe's one-line text (``ich_window_to_string()``), which checkpoints
    keep as metadata "ich.recipe"; ``Window.from_string(ich.TUTORIAL_RECIPE)``
    is the tutorial's preprocessing.

    All arithmetic is float32, as documented in ``include/ich/window.h``.
    Configuration errors raise :class:`IchError`. Use as a context manager
    or call :meth:`close` to free the C recipe early; it is freed when the
    object is collected anyway. One Window may be applied from many threads
    at once.
    """

    _free = staticmethod(lib.ich_window_free)

    def __init__(self, windows="blood,brain,bone", size=None, resize="bilinear",
                 mode="linear", mean=None, std=None, quantize=False, neighbors=0):
        self._handle = None
        handle = ctypes.c_void_p()
        check(lib.ich_window_create(ctypes.byref(handle)))
        self._handle = handle
        try:
            self._add_windows(windows)
            self._set_mode(mode)
            self._set_size(size, resize)
            self._set_normalization(mean, std)
            if not isinstance(quantize, (bool, numbers.Integral)) or quantize not in (0, 1):
                raise _invalid("quantize must be True or False, not %r" % (quantize,))
            check(lib.ich_window_set_quantize(self._handle, int(quantize)))
            check(lib.ich_window_set_neighbors(self._handle, _int32(neighbors, "neighbors")))
        except BaseException:
            self.close()
            raise

    @classmethod
    def _adopt(cls, handle):
        """Wrap a C recipe this object will own."""
        window = cls.__new__(cls)
        window._handle = handle
        return window

    @classmethod
    def from_string(cls, text):
        """Parse a recipe's one-line text (``str(window)``, a checkpoint's
        "ich.recipe", ``ich.TUTORIAL_RECIPE``). Raises ``FormatError`` (an
        :class:`IchError`) naming what is wrong."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        if not isinstance(text, bytes):
            raise TypeError("Window.from_string: text must be a str")
        if b"\0" in text:
            raise _errors.error(_errors.ERR_FORMAT, "recipe: a NUL character in the text")
        handle = ctypes.c_void_p()
        check(lib.ich_window_from_string(text, ctypes.byref(handle)))
        return cls._adopt(handle)

    def to_string(self):
        """The recipe as one canonical line of text (see ``include/ich/window.h``)."""
        buf = ctypes.create_string_buffer(_STRING_MAX)
        check(lib.ich_window_to_string(self._live(), buf, _STRING_MAX, None))
        return buf.value.decode("utf-8")

    __str__ = to_string

    # ---- configuration --------------------------------------------------

    def _add_windows(self, windows):
        if windows is None:
            return
        if isinstance(windows, bytes):
            windows = windows.decode("utf-8")
        if isinstance(windows, str):
            if windows.strip():
                self._add_list(windows)
            return
        try:
            items = list(windows)
        except TypeError:
            raise TypeError("windows must be a str or a sequence, not %r" % (windows,)) from None
        if _is_number_pair(items):  # a single (center, width) pair
            items = [tuple(items)]
        for item in items:
            if isinstance(item, str):
                self._add_list(item)
            else:
                try:
                    center, width = item
                    center, width = float(center), float(width)
                except (TypeError, ValueError):
                    raise _invalid("a window must be a preset name or a (center, width) "
                                   "pair, not %r" % (item,)) from None
                check(lib.ich_window_add(self._handle, center, width))

    def _add_list(self, text):
        # spaces around items are allowed: "blood, brain, bone"
        text = ",".join(item.strip() for item in text.split(","))
        check(lib.ich_window_add_list(self._handle, text.encode("utf-8")))

    def _set_mode(self, mode):
        if mode not in _MODES:
            raise _invalid("mode must be one of %s, not %r" % (sorted(_MODES), mode))
        check(lib.ich_window_set_mode(self._handle, _MODES[mode]))

    def _set_size(self, size, resize):
        if resize not in _RESIZE:
            raise _invalid("resize must be one of %s, not %r" % (sorted(_RESIZE), resize))
        if size is None:
            rows = columns = 0
        elif isinstance(size, numbers.Integral) and not isinstance(size, bool):
            rows = columns = _int32(size, "size")
        else:
            try:
                rows, columns = size
            except (TypeError, ValueError):
                raise _invalid("size must be None, an int or a (rows, columns) pair, not %r"
                               % (size,)) from None
            rows, columns = _int32(rows, "size rows"), _int32(columns, "size columns")
        check(lib.ich_window_set_size(self._handle, rows, columns, _RESIZE[resize]))

    def _set_normalization(self, mean, std):
        if mean is None and std is None:
            return
        mean = np.atleast_1d(np.asarray(0.0 if mean is None else mean, dtype=np.float32))
        std = np.atleast_1d(np.asarray(1.0 if std is None else std, dtype=np.float32))
        if mean.ndim != 1 or std.ndim != 1:
            raise _invalid("mean and std must be numbers or 1-D sequences")
        if len(mean) != len(std):
            if len(mean) == 1:
                mean = np.repeat(mean, len(std))
            elif len(std) == 1:
                std = np.repeat(std, len(mean))
            else:
                raise _invalid("mean has %d values but std has %d" % (len(mean), len(std)))
        mean = np.ascontiguousarray(mean)
        std = np.ascontiguousarray(std)
        check(lib.ich_window_set_normalization(
            self._handle, mean.ctypes.data_as(c_float_p), std.ctypes.data_as(c_float_p),
            len(mean)))

    # ---- queries ----------------------------------------------------------

    @property
    def windows(self):
        """The windows as a list of (center, width) pairs in HU."""
        handle = self._live()
        out = []
        center, width = ctypes.c_float(), ctypes.c_float()
        for i in range(lib.ich_window_count(handle)):
            check(lib.ich_window_get(handle, i, ctypes.byref(center), ctypes.byref(width)))
            out.append((center.value, width.value))
        return out

    @property
    def mode(self):
        """The mapping mode, "linear" or "minmax"."""
        return _MODE_NAMES[lib.ich_window_get_mode(self._live())]

    def _size_and_method(self):
        rows, columns, method = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int()
        check(lib.ich_window_get_size(self._live(), ctypes.byref(rows), ctypes.byref(columns),
                                      ctypes.byref(method)))
        return (rows.value, columns.value), _RESIZE_NAMES[method.value]

    @property
    def size(self):
        """The output (rows, columns); (0, 0) keeps each slice's size."""
        return self._size_and_method()[0]

    @property
    def resize(self):
        """The resize method, "bilinear", "area" or "antialias"."""
        return self._size_and_method()[1]

    @property
    def quantize(self):
        """True when the uint8 step is on."""
        return bool(lib.ich_window_get_quantize(self._live()))

    @property
    def neighbors(self):
        """Neighbouring slices on each side the recipe records."""
        return int(lib.ich_window_get_neighbors(self._live()))

    def _normalization(self):
        mean = np.zeros(_MAX_CHANNELS, np.float32)
        std = np.zeros(_MAX_CHANNELS, np.float32)
        n = lib.ich_window_get_normalization(self._live(), mean.ctypes.data_as(c_float_p),
                                             std.ctypes.data_as(c_float_p))
        return mean[:n].tolist(), std[:n].tolist()

    @property
    def mean(self):
        """The normalisation means (a list: empty for none, one value for
        every channel, or one per channel)."""
        return self._normalization()[0]

    @property
    def std(self):
        """The normalisation standard deviations (as :attr:`mean`)."""
        return self._normalization()[1]

    def output_shape(self, rows, columns):
        """Return (channels, rows', columns') of the output for a
        rows x columns input."""
        c, r, w = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
        check(lib.ich_window_output_shape(self._live(), _int32(rows, "rows"),
                                          _int32(columns, "columns"), ctypes.byref(c),
                                          ctypes.byref(r), ctypes.byref(w)))
        return (c.value, r.value, w.value)

    # ---- applying ---------------------------------------------------------

    def apply(self, hu, dtype=np.uint8, monochrome1=False):
        """Apply the recipe to a 2-D slice of HU values, or to a
        :class:`ich.DicomImage` (its ``hu`` and ``monochrome1``).

        `hu` is converted with ``np.ascontiguousarray(hu, dtype=np.float32)``.
        For a MONOCHROME1 slice (``monochrome1`` true, or a DicomImage that
        is one) the windowed values are inverted in the display range,
        v -> 1 - v before the uint8 step or the normalisation (window.h),
        so the output is "larger is brighter" as for MONOCHROME2; the HU
        themselves are never inverted (dicom.h).
        With ``dtype=np.uint8`` (default) the result is an 8-bit image of
        shape (rows, columns, channels) (HWC, ready for a PNG; normalisation
        does not apply). With ``dtype=np.float32`` it is a float32 tensor of
        shape (channels, rows, columns) (CHW), normalised with mean/std.
        Raises :class:`IchError` (``ShapeError``, also a ValueError) when
        `hu` is not 2-D.
        """
        handle = self._live()
        if hasattr(hu, "hu") and hasattr(hu, "monochrome1"):  # a DicomImage
            hu, monochrome1 = hu.hu, hu.monochrome1
        invert = 1 if monochrome1 else 0
        hu = np.ascontiguousarray(hu, dtype=np.float32)
        if hu.ndim != 2:
            raise _errors.error(_errors.ERR_SHAPE,
                                "Window.apply: hu must be a 2-D array, got shape %s"
                                % (hu.shape,))
        rows, columns = hu.shape
        channels, out_rows, out_columns = self.output_shape(rows, columns)
        hu_p = hu.ctypes.data_as(c_float_p)
        dtype = np.dtype(dtype)
        if dtype == np.uint8:
            out = np.empty((out_rows, out_columns, channels), dtype=np.uint8)
            check(lib.ich_window_apply_display_u8(handle, hu_p, rows, columns, invert,
                                                  out.ctypes.data_as(c_uint8_p), out.size))
        elif dtype == np.float32:
            out = np.empty((channels, out_rows, out_columns), dtype=np.float32)
            check(lib.ich_window_apply_display_f32(handle, hu_p, rows, columns, invert,
                                                   out.ctypes.data_as(c_float_p), out.size))
        else:
            raise TypeError("Window.apply: dtype must be numpy.uint8 or numpy.float32, not %s"
                            % dtype)
        return out

    __call__ = apply

    def apply_file(self, dicom_path, dtype=np.uint8, limits=None):
        """Read the DICOM at `dicom_path` and apply the recipe to it in one
        call: the slice is decoded and windowed in C, and only the windowed
        result reaches numpy (no copy of its pixels or HU). The same
        values as ``apply(read_dicom(dicom_path))``, MONOCHROME1 inverted
        for display as there.

        `dtype` and the result's shape are as for :meth:`apply`; `limits`
        as for :func:`ich.read_dicom`. Raises what :func:`ich.read_dicom`
        raises for the file, naming it.
        """
        from . import dicom as _dicom  # dicom imports nothing of window
        window = self._live()
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.uint8), np.dtype(np.float32)):
            raise TypeError("Window.apply_file: dtype must be numpy.uint8 or numpy.float32, "
                            "not %s" % dtype)
        handle = ctypes.c_void_p()
        s = _dicom._limits_struct(limits)
        check(lib.ich_dicom_read_with_limits(fspath_bytes(dicom_path),
                                             None if s is None else ctypes.byref(s),
                                             ctypes.byref(handle)))
        try:
            info = _dicom.DicomInfo()
            check(lib.ich_dicom_get_info(handle, ctypes.byref(info)))
            channels, rows, columns = self.output_shape(info.rows, info.columns)
            if dtype == np.uint8:
                out = np.empty((rows, columns, channels), dtype=np.uint8)
                check(lib.ich_window_apply_dicom_u8(window, handle,
                                                    out.ctypes.data_as(c_uint8_p), out.size))
            else:
                out = np.empty((channels, rows, columns), dtype=np.float32)
                check(lib.ich_window_apply_dicom_f32(window, handle,
                                                     out.ctypes.data_as(c_float_p), out.size))
        finally:
            lib.ich_dicom_free(handle)
        return out

    def to_png(self, dicom_path, png_path):
        """Read the DICOM at `dicom_path`, apply the recipe and write the
        8-bit result as a PNG at `png_path` (atomically). Needs 1 channel
        (gray) or 3 (RGB); other counts raise ``UnsupportedError``.
        """
        check(lib.ich_window_dicom_to_png(self._live(), fspath_bytes(dicom_path),
                                          fspath_bytes(png_path)))

    def __repr__(self):
        if self._handle is None:
            return "<ich.Window (closed)>"
        return "ich.Window.from_string(%r)" % self.to_string()
