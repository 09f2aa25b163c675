"""Reading DICOM slices (to stored values and Hounsfield units) and writing CT slices."""

import ctypes

import numpy as np

from . import _errors
from ._errors import check
from ._lib import CtSlice, DicomInfo, _declare, c_int16_p, lib
from ._util import INT32_MAX, c_string, fspath_bytes

_PIXEL_DTYPES = {
    (8, 0): np.uint8,
    (8, 1): np.int8,
    (16, 0): np.uint16,
    (16, 1): np.int16,
    (32, 0): np.uint32,
    (32, 1): np.int32,
}

_METADATA = (
    "rows", "columns", "bits_allocated", "bits_stored", "pixel_representation",
    "sample_bits", "monochrome1", "instance_number", "rescale_slope", "rescale_intercept",
    "pixel_spacing", "slice_thickness", "image_position", "window_center", "window_width",
    "photometric", "modality", "transfer_syntax", "sop_instance_uid",
    "series_instance_uid", "study_instance_uid", "patient_id",
)


class DicomLimitsStruct(ctypes.Structure):
    """Mirror of ``struct ich_dicom_limits`` (include/ich/dicom.h)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("max_file_bytes", ctypes.c_uint64),
        ("max_pixels", ctypes.c_uint64),
        ("max_decoded_bytes", ctypes.c_uint64),
    ]


_declare("ich_dicom_default_limits", ctypes.c_int, ctypes.POINTER(DicomLimitsStruct))
_declare("ich_dicom_get_limits", ctypes.c_int, ctypes.POINTER(DicomLimitsStruct))
_declare("ich_dicom_set_limits", ctypes.c_int, ctypes.POINTER(DicomLimitsStruct))
_declare("ich_dicom_read_with_limits", ctypes.c_int, ctypes.c_char_p,
         ctypes.POINTER(DicomLimitsStruct), ctypes.POINTER(ctypes.c_void_p))
_declare("ich_dicom_read_memory_with_limits", ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
         ctypes.c_char_p, ctypes.POINTER(DicomLimitsStruct), ctypes.POINTER(ctypes.c_void_p))

LIMIT_NAMES = ("max_file_bytes", "max_pixels", "max_decoded_bytes")


def _limits_struct(limits):
    """A DicomLimitsStruct from a dict (missing or None entries: the
    default), or None for None."""
    if limits is None:
        return None
    unknown = set(limits) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError("unknown DICOM limit(s): %s (known: %s)"
                         % (", ".join(sorted(unknown)), ", ".join(LIMIT_NAMES)))
    s = DicomLimitsStruct()
    s.size = ctypes.sizeof(s)
    for name in LIMIT_NAMES:
        value = limits.get(name)
        if value is None:
            continue
        value = int(value)
        if not 0 < value < 1 << 64:
            raise ValueError("DICOM limit %s must be a positive integer, not %r" % (name, value))
        setattr(s, name, value)
    return s


def _limits_dict(s):
    return {name: int(getattr(s, name)) for name in LIMIT_NAMES}


def default_dicom_limits():
    """The built-in DICOM reading limits, as a dict: ``max_file_bytes``
    (128 MiB), ``max_pixels`` (rows * columns * frames, 4096 * 4096) and
    ``max_decoded_bytes`` (inflated data set or decoded pixel data,
    128 MiB)."""
    s = DicomLimitsStruct()
    s.size = ctypes.sizeof(s)
    check(lib.ich_dicom_default_limits(ctypes.byref(s)))
    return _limits_dict(s)


def dicom_limits():
    """The process-wide DICOM reading limits now in force (a dict with the
    keys of :func:`default_dicom_limits`). They apply to every reader:
    :func:`read_dicom`, datasets, windows, the example programs' library
    calls."""
    s = DicomLimitsStruct()
    s.size = ctypes.sizeof(s)
    check(lib.ich_dicom_get_limits(ctypes.byref(s)))
    return _limits_dict(s)


def set_dicom_limits(**limits):
    """Set the process-wide DICOM reading limits; a limit not given (or
    None) takes its default, so ``set_dicom_limits()`` restores them all.
    Returns the limits that were in force before. Exceeding a limit makes
    a read raise ``UnsupportedError`` naming the file and the limit.

    >>> old = ich.set_dicom_limits(max_pixels=1024 * 1024)
    """
    previous = dicom_limits()
    check(lib.ich_dicom_set_limits(ctypes.byref(_limits_struct(limits))))
    return previous


def _text(raw):
    return raw.decode("utf-8", "replace")


class DicomImage:
    """One decoded DICOM slice, as returned by :func:`read_dicom`.

    Arrays (both owned by numpy, independent of the C library):

    * ``pixels``: the stored values, shape (rows, columns), native byte
      order, dtype int8/uint8/int16/uint16/int32/uint32 from ``sample_bits``
      and ``pixel_representation`` (equal to pydicom's ``pixel_array``;
      1-bit data comes as uint8 0/1).
    * ``hu``: float32 (rows, columns), ``stored * rescale_slope +
      rescale_intercept``, MONOCHROME1 too (pydicom's apply_modality_lut);
      MONOCHROME1's inversion is a display step that
      ``Window.apply(image)`` applies after the window.

    Metadata attributes: ``rows``, ``columns``, ``bits_allocated``,
    ``bits_stored``, ``pixel_representation``, ``sample_bits``,
    ``monochrome1`` (bool), ``instance_number`` (0 when absent),
    ``rescale_slope`` (1 when absent), ``rescale_intercept`` (0 when
    absent), ``pixel_spacing`` (row, column spacing in mm),
    ``slice_thickness``, ``image_position`` (x, y, z), ``window_center``,
    ``window_width``, and the strings ``photometric``, ``modality``,
    ``transfer_syntax``, ``sop_instance_uid``, ``series_instance_uid``,
    ``study_instance_uid``, ``patient_id``. Absent numeric tags are NaN and
    absent strings are empty, as in the C API.
    """

    __slots__ = ("pixels", "hu") + _METADATA

    def __init__(self, pixels, hu, info):
        self.pixels = pixels
        self.hu = hu
        for name, value in info.items():
            setattr(self, name, value)

    @property
    def shape(self):
        """(rows, columns) of the slice."""
        return (self.rows, self.columns)

    @property
    def metadata(self):
        """All metadata attributes as a dict (no pixel arrays)."""
        return {name: getattr(self, name) for name in _METADATA}

    def __repr__(self):
        return "<ich.DicomImage %dx%d %s %s sop=%s>" % (
            self.rows, self.columns, self.modality or "?", self.pixels.dtype,
            self.sop_instance_uid or "?")


def _info_dict(info):
    return {
        "rows": int(info.rows),
        "columns": int(info.columns),
        "bits_allocated": int(info.bits_allocated),
        "bits_stored": int(info.bits_stored),
        "pixel_representation": int(info.pixel_representation),
        "sample_bits": int(info.sample_bits),
        "monochrome1": bool(info.monochrome1),
        "instance_number": int(info.instance_number),
        "rescale_slope": float(info.rescale_slope),
        "rescale_intercept": float(info.rescale_intercept),
        "pixel_spacing": tuple(float(v) for v in info.pixel_spacing),
        "slice_thickness": float(info.slice_thickness),
        "image_position": tuple(float(v) for v in info.image_position),
        "window_center": float(info.window_center),
        "window_width": float(info.window_width),
        "photometric": _text(info.photometric),
        "modality": _text(info.modality),
        "transfer_syntax": _text(info.transfer_syntax),
        "sop_instance_uid": _text(info.sop_instance_uid),
        "series_instance_uid": _text(info.series_instance_uid),
        "study_instance_uid": _text(info.study_instance_uid),
        "patient_id": _text(info.patient_id),
    }


def _copy_out(address, dtype, rows, columns):
    """Copy rows*columns values of `dtype` at C `address` into a new array."""
    out = np.empty((rows, columns), dtype=dtype)
    if out.nbytes:
        if not address:
            raise _errors.error(_errors.ERR_INTERNAL, "libich returned a NULL pixel buffer")
        ctypes.memmove(out.ctypes.data, address, out.nbytes)
    return out


def read_dicom(path, limits=None):
    """Read and decode the single-frame grayscale DICOM file at `path`.

    `path` is a str, bytes or os.PathLike. Returns a :class:`DicomImage`
    whose ``pixels`` and ``hu`` arrays are copies owned by numpy.
    `limits`: a dict of resource limits for this read (keys as in
    :func:`default_dicom_limits`; missing keys take their defaults); None
    uses the process-wide limits (:func:`set_dicom_limits`).

    Raises :class:`IchError` (the subclass for the status): ``IchIOError``
    (an OSError) when the file cannot be opened or is not a regular file (a
    FIFO, a device, a socket: refused at once, never waited on),
    ``FormatError`` when it is not DICOM, truncated, has no pixel data,
    lengths past its end or non-finite or absurd rescale values,
    ``UnsupportedError`` for colour or multi-frame images, bit layouts
    libich does not read and exceeded limits. The message names the file.
    """
    handle = ctypes.c_void_p()
    s = _limits_struct(limits)
    check(lib.ich_dicom_read_with_limits(fspath_bytes(path), None if s is None else ctypes.byref(s),
                                         ctypes.byref(handle)))
    return _image_from_handle(handle)


def read_dicom_bytes(data, name=None, limits=None):
    """Decode a DICOM file held in memory (`data`: bytes, bytearray or
    memoryview, e.g. read from a zip archive or received over the network).

    `name` (str) names the data in error messages; None gives "<memory>".
    `limits`: as for :func:`read_dicom`.
    Returns a :class:`DicomImage`, as :func:`read_dicom` does, and raises
    the same errors (never ``IchIOError``).
    """
    view = memoryview(data).cast("B")
    buffer = (ctypes.c_ubyte * len(view)).from_buffer_copy(view) if view.readonly else \
        (ctypes.c_ubyte * len(view)).from_buffer(view)
    handle = ctypes.c_void_p()
    s = _limits_struct(limits)
    check(lib.ich_dicom_read_memory_with_limits(buffer, len(view),
                                                None if name is None else str(name).encode(),
                                                None if s is None else ctypes.byref(s),
                                                ctypes.byref(handle)))
    return _image_from_handle(handle)


def _image_from_handle(handle):
    """Copy a decoded slice out of its C handle, then free the handle."""
    try:
        info = DicomInfo()
        check(lib.ich_dicom_get_info(handle, ctypes.byref(info)))
        meta = _info_dict(info)
        rows, columns = meta["rows"], meta["columns"]
        key = (meta["sample_bits"], meta["pixel_representation"])
        if key not in _PIXEL_DTYPES:
            raise _errors.error(
                _errors.ERR_INTERNAL,
                "unexpected sample_bits=%d pixel_representation=%d" % key)
        pixels = _copy_out(lib.ich_dicom_pixels(handle), _PIXEL_DTYPES[key], rows, columns)
        hu = _copy_out(lib.ich_dicom_hu(handle), np.float32, rows, columns)
    finally:
        lib.ich_dicom_free(handle)
    return DicomImage(pixels, hu, meta)


def write_ct(path, pixels, *, rescale_slope=1.0, rescale_intercept=-1024.0,
             pixel_spacing=(1.0, 1.0), slice_thickness=0.0, image_position=(0.0, 0.0, 0.0),
             instance_number=0, window_center=None, window_width=None, patient_id=None,
             study_instance_uid=None, series_instance_uid=None, sop_instance_uid=None):
    """Write a CT Image Storage DICOM file (explicit VR little endian,
    MONOCHROME2, signed 16-bit) at `path`, atomically.

    `pixels` is a 2-D array of stored values; it must be int16 or an integer
    array whose values fit in int16. HU = stored * rescale_slope +
    rescale_intercept (a slope of 0 means 1, a pixel spacing of zeros means
    1 mm, as in the C API). `slice_thickness` 0 leaves the tag out; the window
    tags are written only when `window_width` is given and > 0. UIDs left
    as None are generated; `patient_id` None writes "ANONYMOUS".

    Raises :class:`IchError` (``InvalidArgumentError`` for bad dimensions or
    UIDs, ``IchIOError`` when the file cannot be written), TypeError or
    ValueError for a bad `pixels` array.
    """
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise _errors.error(_errors.ERR_SHAPE,
                            "write_ct: pixels must be 2-D, got shape %s" % (arr.shape,))
    if arr.dtype != np.int16:
        if arr.dtype.kind not in "iub":
            raise TypeError("write_ct: pixels must be an integer array (int16), not %s"
                            % arr.dtype)
        if arr.size and (arr.min() < -32768 or arr.max() > 32767):
            raise ValueError("write_ct: pixel values do not fit in int16")
    arr = np.ascontiguousarray(arr, dtype=np.int16)

    spacing = tuple(float(v) for v in pixel_spacing)
    position = tuple(float(v) for v in image_position)
    if len(spacing) != 2:
        raise ValueError("write_ct: pixel_spacing must have 2 values")
    if len(position) != 3:
        raise ValueError("write_ct: image_position must have 3 values")

    if max(arr.shape) > INT32_MAX:
        raise _errors.error(_errors.ERR_SHAPE, "write_ct: pixels too large: %s" % (arr.shape,))

    s = CtSlice()
    s.rows, s.columns = arr.shape
    s.pixels = arr.ctypes.data_as(c_int16_p)
    s.rescale_slope = float(rescale_slope)
    s.rescale_intercept = float(rescale_intercept)
    s.pixel_spacing[:] = spacing
    s.slice_thickness = float(slice_thickness)
    s.image_position[:] = position
    instance_number = int(instance_number)
    if not -INT32_MAX - 1 <= instance_number <= INT32_MAX:
        raise ValueError("write_ct: instance_number out of int32 range")
    s.instance_number = instance_number
    if window_width is not None:
        if window_center is None:
            raise ValueError("write_ct: window_width given without window_center")
        s.window_center = float(window_center)
        s.window_width = float(window_width)
    s.patient_id = c_string(patient_id, "patient_id")
    s.study_instance_uid = c_string(study_instance_uid, "study_instance_uid")
    s.series_instance_uid = c_string(series_instance_uid, "series_instance_uid")
    s.sop_instance_uid = c_string(sop_instance_uid, "sop_instance_uid")
    check(lib.ich_dicom_write_ct(fspath_bytes(path), ctypes.byref(s)))
