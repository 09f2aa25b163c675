"""Locate and load libich, and declare the C signatures for ctypes.

The library is looked for, in this order:

1. the path in the environment variable ``ICH_LIBRARY`` (a ``.so`` file);
   when it is set, no other place is tried;
2. ``$ICH_BUILD_DIR/libich/libich.so.0`` when ``ICH_BUILD_DIR`` is set;
3. the repository's own build tree, ``<repo>/build/libich/libich.so.0``
   (this package lives in ``<repo>/bindings/python/ich``);
4. an installed ``libich.so.0`` that the dynamic loader finds
   (``ldconfig``/``LD_LIBRARY_PATH``), then ``ctypes.util.find_library``.

Everything here is private; use the functions of the ``ich`` package.
"""

import ctypes
import ctypes.util
import os

#: The library major version these bindings are written for (the SONAME's).
ABI_MAJOR = 0

_SONAME = "libich.so.0"

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_BUILD = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "build"))

_HOW_TO = (
    "Build it with\n"
    "    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build\n"
    "in the repository root, or set ICH_LIBRARY to the path of libich.so.0 "
    "(or ICH_BUILD_DIR to a CMake build folder)."
)


def _candidates():
    """Yield (description, path-or-name) pairs in search order."""
    build_dir = os.environ.get("ICH_BUILD_DIR")
    if build_dir:
        yield "ICH_BUILD_DIR", os.path.join(build_dir, "libich", _SONAME)
    yield "repository build tree", os.path.join(_REPO_BUILD, "libich", _SONAME)
    yield "installed", _SONAME
    found = ctypes.util.find_library("ich")
    if found:
        yield "ctypes.util.find_library", found


def _check_sanitizer_runtime(path):
    """Raise ImportError if `path` is an ASan build and the ASan runtime is not
    loaded: dlopen() would make ASan print a message and end the process."""
    try:
        with open(path, "rb") as f:
            needs_asan = b"libasan.so" in f.read()
        with open("/proc/self/maps") as f:
            loaded = "libasan" in f.read()
    except OSError:
        return
    if needs_asan and not loaded:
        raise ImportError(
            "ich: %s is built with AddressSanitizer; preload its runtime, and "
            "libstdc++ with it:\n    LD_PRELOAD=\"$(gcc -print-file-name=libasan.so) "
            "$(gcc -print-file-name=libstdc++.so)\" ASAN_OPTIONS=detect_leaks=0 python3 ..."
            % path)


def _load(path):
    if os.sep in path:
        _check_sanitizer_runtime(path)
    return ctypes.CDLL(path)


def load_library():
    """Load libich and return the ctypes.CDLL; raise ImportError if not found."""
    explicit = os.environ.get("ICH_LIBRARY")
    if explicit:
        try:
            return _load(explicit)
        except OSError as exc:
            raise ImportError(
                "ich: cannot load ICH_LIBRARY=%r: %s" % (explicit, exc)
            ) from None
    tried = []
    for where, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s (%s: no such file)" % (path, where))
            continue
        try:
            return _load(path)
        except OSError as exc:
            tried.append("%s (%s: %s)" % (path, where, exc))
    raise ImportError(
        "ich: cannot find the libich shared library. Tried:\n    "
        + "\n    ".join(tried)
        + "\n"
        + _HOW_TO
    )


lib = load_library()

# ---- C types -------------------------------------------------------------

c_status = ctypes.c_int  # ich_status (an enum)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_uint8_p = ctypes.POINTER(ctypes.c_uint8)
c_int16_p = ctypes.POINTER(ctypes.c_int16)


class DicomInfo(ctypes.Structure):
    """Mirror of ``struct ich_dicom_info`` (include/ich/dicom.h)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("rows", ctypes.c_int32),
        ("columns", ctypes.c_int32),
        ("bits_allocated", ctypes.c_int32),
        ("bits_stored", ctypes.c_int32),
        ("pixel_representation", ctypes.c_int32),
        ("sample_bits", ctypes.c_int32),
        ("monochrome1", ctypes.c_int32),
        ("instance_number", ctypes.c_int32),
        ("rescale_slope", ctypes.c_double),
        ("rescale_intercept", ctypes.c_double),
        ("pixel_spacing", ctypes.c_double * 2),
        ("slice_thickness", ctypes.c_double),
        ("image_position", ctypes.c_double * 3),
        ("window_center", ctypes.c_double),
        ("window_width", ctypes.c_double),
        ("photometric", ctypes.c_char * 17),
        ("modality", ctypes.c_char * 17),
        ("transfer_syntax", ctypes.c_char * 65),
        ("sop_instance_uid", ctypes.c_char * 65),
        ("series_instance_uid", ctypes.c_char * 65),
        ("study_instance_uid", ctypes.c_char * 65),
        ("patient_id", ctypes.c_char * 65),
    ]

    def __init__(self):
        super().__init__()
        self.size = ctypes.sizeof(self)


class CtSlice(ctypes.Structure):
    """Mirror of ``struct ich_ct_slice`` (include/ich/dicom.h)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("rows", ctypes.c_int32),
        ("columns", ctypes.c_int32),
        ("pixels", c_int16_p),
        ("rescale_slope", ctypes.c_double),
        ("rescale_intercept", ctypes.c_double),
        ("pixel_spacing", ctypes.c_double * 2),
        ("slice_thickness", ctypes.c_double),
        ("image_position", ctypes.c_double * 3),
        ("instance_number", ctypes.c_int32),
        ("window_center", ctypes.c_double),
        ("window_width", ctypes.c_double),
        ("patient_id", ctypes.c_char_p),
        ("study_instance_uid", ctypes.c_char_p),
        ("series_instance_uid", ctypes.c_char_p),
        ("sop_instance_uid", ctypes.c_char_p),
    ]

    def __init__(self):
        super().__init__()
        self.size = ctypes.sizeof(self)


#: ich_log_fn: void (*)(ich_log_level level, const char *message, void *user)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


# ---- core.h ---------------------------------------------------------------
_declare("ich_version", ctypes.c_char_p)
_declare("ich_version_number", ctypes.c_int)
_declare("ich_status_string", ctypes.c_char_p, c_status)
_declare("ich_last_error", ctypes.c_char_p)
_declare("ich_clear_error", None)
_declare("ich_set_log_callback", None, LOG_FN, ctypes.c_void_p, ctypes.c_int)

# ---- dicom.h --------------------------------------------------------------
_declare("ich_dicom_read", c_status, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_declare("ich_dicom_read_memory", c_status, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
         ctypes.POINTER(ctypes.c_void_p))
_declare("ich_dicom_free", None, ctypes.c_void_p)
_declare("ich_dicom_get_info", c_status, ctypes.c_void_p, ctypes.POINTER(DicomInfo))
_declare("ich_dicom_size", None, ctypes.c_void_p, c_int32_p, c_int32_p)
_declare("ich_dicom_pixels", ctypes.c_void_p, ctypes.c_void_p)
_declare("ich_dicom_hu", ctypes.c_void_p, ctypes.c_void_p)
_declare("ich_dicom_write_ct", c_status, ctypes.c_char_p, ctypes.POINTER(CtSlice))

# ---- window.h -------------------------------------------------------------
_declare("ich_window_preset", c_status, ctypes.c_char_p, c_float_p, c_float_p)
_declare("ich_window_create", c_status, ctypes.POINTER(ctypes.c_void_p))
_declare("ich_window_free", None, ctypes.c_void_p)
_declare("ich_window_add", c_status, ctypes.c_void_p, ctypes.c_float, ctypes.c_float)
_declare("ich_window_add_list", c_status, ctypes.c_void_p, ctypes.c_char_p)
_declare("ich_window_count", ctypes.c_int, ctypes.c_void_p)
_declare("ich_window_get", c_status, ctypes.c_void_p, ctypes.c_int, c_float_p, c_float_p)
_declare("ich_window_set_mode", c_status, ctypes.c_void_p, ctypes.c_int)
_declare("ich_window_set_size", c_status, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
         ctypes.c_int)
_declare("ich_window_set_normalization", c_status, ctypes.c_void_p, c_float_p, c_float_p,
         ctypes.c_int)
_declare("ich_window_output_shape", c_status, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
         c_int32_p, c_int32_p, c_int32_p)
_declare("ich_window_apply_u8", c_status, ctypes.c_void_p, c_float_p, ctypes.c_int32,
         ctypes.c_int32, c_uint8_p, ctypes.c_size_t)
_declare("ich_window_apply_f32", c_status, ctypes.c_void_p, c_float_p, ctypes.c_int32,
         ctypes.c_int32, c_float_p, ctypes.c_size_t)
_declare("ich_window_dicom_to_png", c_status, ctypes.c_void_p, ctypes.c_char_p,
         ctypes.c_char_p)
_declare("ich_window_set_quantize", c_status, ctypes.c_void_p, ctypes.c_int)
_declare("ich_window_set_neighbors", c_status, ctypes.c_void_p, ctypes.c_int32)
_declare("ich_window_get_mode", ctypes.c_int, ctypes.c_void_p)
_declare("ich_window_get_size", c_status, ctypes.c_void_p, c_int32_p, c_int32_p,
         ctypes.POINTER(ctypes.c_int))
_declare("ich_window_get_quantize", ctypes.c_int, ctypes.c_void_p)
_declare("ich_window_get_neighbors", ctypes.c_int32, ctypes.c_void_p)
_declare("ich_window_get_normalization", ctypes.c_int, ctypes.c_void_p, c_float_p, c_float_p)
_declare("ich_window_to_string", c_status, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
         ctypes.POINTER(ctypes.c_size_t))
_declare("ich_window_from_string", c_status, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_declare("ich_window_apply_display_u8", c_status, ctypes.c_void_p, c_float_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int, c_uint8_p, ctypes.c_size_t)
_declare("ich_window_apply_display_f32", c_status, ctypes.c_void_p, c_float_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int, c_float_p, ctypes.c_size_t)

# ---- image.h --------------------------------------------------------------
_declare("ich_png_write", c_status, ctypes.c_char_p, c_uint8_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32)

_major = lib.ich_version_number() // 10000
if _major != ABI_MAJOR:
    raise ImportError(
        "ich: the loaded libich is version %s (major %d) but these bindings "
        "need major version %d" % (lib.ich_version().decode(), _major, ABI_MAJOR)
    )
