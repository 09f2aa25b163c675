"""The built-in synthetic head-CT dataset (include/ich/phantom.h).

``write_phantom(dir, ...)`` writes patients -> studies -> one axial series
each as CT DICOM files under ``dir/images`` with the RSNA-style
``labels.csv`` (``ID,Label`` rows ``ID_<image>_<subtype>``), ``metadata.csv``
and ``scans.csv``; ``phantom_slice(patient, study, slice, ...)`` draws one
slice in memory exactly as ``write_phantom`` writes it. The same options
give the same bytes on any thread count.
"""

import ctypes
import numbers

import numpy as np

from . import _errors
from ._cancel import Interruptible, counts
from ._errors import check
from ._lib import _declare, c_float_p, c_status, lib
from ._util import fspath_bytes

__all__ = ["write_phantom", "phantom_slice", "phantom_tissues", "PHANTOM_TYPES",
           "PHANTOM_TISSUES"]

#: Hemorrhage types in the order of ``type_weights`` (and of the label
#: columns after "any").
PHANTOM_TYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid",
                 "subdural")

#: Names of the tissue codes ``phantom_tissues`` gives (enum ich_phantom_tissue):
#: ``PHANTOM_TISSUES[code]``; blood of type t is code 12 + t.
PHANTOM_TISSUES = ("air", "soft_tissue", "fat", "bone", "csf", "grey", "white", "dura",
                   "calcification", "edema", "headrest", "sinus_air") + PHANTOM_TYPES

_LAYOUTS = {"flat": 0, "tree": 1}

#: ich_progress_fn: int (*)(void *user, int64_t done, int64_t total, const char *what)
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                               ctypes.c_char_p)


class _Options(ctypes.Structure):
    """Mirror of ``struct ich_phantom_options`` (include/ich/phantom.h)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("seed", ctypes.c_uint64),
        ("patients", ctypes.c_int32),
        ("studies_per_patient", ctypes.c_int32),
        ("slices", ctypes.c_int32),
        ("rows", ctypes.c_int32),
        ("columns", ctypes.c_int32),
        ("prevalence", ctypes.c_double),
        ("multiple", ctypes.c_double),
        ("size_min", ctypes.c_double),
        ("size_max", ctypes.c_double),
        ("noise", ctypes.c_double),
        ("type_weights", ctypes.c_double * 5),
        ("layout", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("progress", PROGRESS_FN),
        ("progress_user", ctypes.c_void_p),
        ("vary_intercept", ctypes.c_int32),
    ]


_declare("ich_phantom_options_init", None, ctypes.POINTER(_Options))
_declare("ich_phantom_write", c_status, ctypes.c_char_p, ctypes.POINTER(_Options),
         ctypes.POINTER(ctypes.c_int64))
_declare("ich_phantom_tissues", c_status, ctypes.POINTER(_Options), ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
_declare("ich_phantom_slice", c_status, ctypes.POINTER(_Options), ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32, c_float_p, ctypes.c_size_t, c_float_p,
         ctypes.c_char_p, ctypes.c_size_t)


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _int(value, name, lo, hi):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid("%s must be an integer, not %r" % (name, value))
    if not lo <= int(value) <= hi:
        raise _invalid("%s must be %d..%d, got %d" % (name, lo, hi, value))
    return int(value)


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid("%s must be a number, not %r" % (name, value))
    return float(value)


def _weights(type_weights):
    if type_weights is None:
        return [0.0] * 5
    if isinstance(type_weights, dict):
        unknown = set(type_weights) - set(PHANTOM_TYPES)
        if unknown:
            raise _invalid("type_weights: unknown types %s (known: %s)"
                           % (sorted(unknown), ", ".join(PHANTOM_TYPES)))
        return [_real(type_weights.get(t, 0.0), "type_weights[%s]" % t) for t in PHANTOM_TYPES]
    weights = list(type_weights)
    if len(weights) != 5:
        raise _invalid("type_weights needs 5 values (%s), got %d"
                       % (", ".join(PHANTOM_TYPES), len(weights)))
    return [_real(w, "type_weights") for w in weights]


def _options(patients=20, slices=24, size=512, studies=1, seed=0, prevalence=0.5,
             multiple=0.25, size_range=(0.4, 1.0), noise=6.0, type_weights=None,
             layout="flat", threads=0, vary_intercept=False):
    o = _Options()
    o.size = ctypes.sizeof(o)  # as the C macro does (ICH_SIZED)
    lib.ich_phantom_options_init(ctypes.byref(o))
    o.patients = _int(patients, "patients", 1, 2**31 - 1)
    o.slices = _int(slices, "slices", 1, 2**31 - 1)
    o.studies_per_patient = _int(studies, "studies", 1, 2**31 - 1)
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        o.rows = o.columns = _int(size, "size", 16, 4096)
    else:
        try:
            rows, columns = size
        except (TypeError, ValueError):
            raise _invalid("size must be an int or (rows, columns), not %r" % (size,)) from None
        o.rows = _int(rows, "size rows", 16, 4096)
        o.columns = _int(columns, "size columns", 16, 4096)
    o.seed = _int(seed, "seed", 0, 2**64 - 1)
    o.prevalence = _real(prevalence, "prevalence")
    o.multiple = _real(multiple, "multiple")
    try:
        lo, hi = size_range
    except (TypeError, ValueError):
        raise _invalid("size_range must be (min, max), not %r" % (size_range,)) from None
    o.size_min = _real(lo, "size_range[0]")
    o.size_max = _real(hi, "size_range[1]")
    o.noise = _real(noise, "noise")
    o.type_weights[:] = _weights(type_weights)
    if layout not in _LAYOUTS:
        raise _invalid("layout must be 'flat' or 'tree', not %r" % (layout,))
    o.layout = _LAYOUTS[layout]
    o.threads = _int(threads, "threads", 0, 2**31 - 1)
    if not isinstance(vary_intercept, (bool, numbers.Integral)):
        raise _invalid("vary_intercept must be a bool, not %r" % (vary_intercept,))
    o.vary_intercept = 1 if vary_intercept else 0
    return o


def write_phantom(dir, patients=20, slices=24, size=512, studies=1, seed=0, prevalence=0.5,
                  multiple=0.25, size_range=(0.4, 1.0), noise=6.0, type_weights=None,
                  layout="flat", threads=0, progress=None, vary_intercept=False):
    """Write the synthetic head-CT dataset into the folder `dir` and return
    the number of slices (DICOM files) written.

    Arguments:
        patients, studies, slices: patients, studies per patient (one series
            each), slices per series.
        size: rows and columns, an int N (N x N) or (rows, columns), 16..4096.
        seed: everything follows from it (and the other options).
        prevalence: share of series with a hemorrhage (0..1).
        multiple: share of bleeding series with more than one type.
        size_range: (smallest, largest) bleed size scale, subtle to obvious.
        noise: scanner noise sd in HU.
        type_weights: relative frequency of the types, a dict by name (see
            ``PHANTOM_TYPES``) or 5 numbers in that order; None: equal.
        layout: "flat" (``images/ID_*.dcm``) or "tree"
            (``images/<patient>/<scan>/ID_*.dcm``).
        threads: worker threads, 0 = one per CPU; the files do not depend on it.
        progress: None or ``progress(done, total)``, called a few times a
            second; return True to cancel (raises :class:`ich.CancelledError`).
            Ctrl-C stops the work and raises KeyboardInterrupt.
        vary_intercept: False: every series has rescale intercept -1024;
            True: each series -1024, -1000 or 0 (seeded; the HU are the same).
    Bad options raise InvalidArgumentError; I/O failures IchIOError.
    """
    o = _options(patients, slices, size, studies, seed, prevalence, multiple, size_range,
                 noise, type_weights, layout, threads, vary_intercept)
    written = ctypes.c_int64(0)
    # Always a callback of ours, so that Ctrl-C stops the C loop (ich._cancel).
    with Interruptible(progress) as guard:
        callback = PROGRESS_FN(guard.wrap(counts))
        o.progress = callback
        status = lib.ich_phantom_write(fspath_bytes(dir), ctypes.byref(o), ctypes.byref(written))
    guard.check(status)
    return written.value


def phantom_slice(patient, study, slice, **options):
    """Draw one slice in memory exactly as :func:`write_phantom` with the same
    options writes it: returns ``(hu, labels, id)``, the (rows, columns)
    float32 Hounsfield units (noise included, the values the DICOM file
    gives), the six labels (any, epidural, intraparenchymal,
    intraventricular, subarachnoid, subdural) as float32 0/1, and the image
    ID ("ID_<10 hex digits>"). `options` are those of write_phantom
    (without progress and layout, which do not change a slice)."""
    o = _options(**options)
    patient = _int(patient, "patient", -2**31, 2**31 - 1)
    study = _int(study, "study", -2**31, 2**31 - 1)
    slice = _int(slice, "slice", -2**31, 2**31 - 1)
    hu = np.empty((o.rows, o.columns), dtype=np.float32)
    labels = np.zeros(6, dtype=np.float32)
    ident = ctypes.create_string_buffer(16)
    check(lib.ich_phantom_slice(ctypes.byref(o), patient, study, slice,
                                hu.ctypes.data_as(c_float_p), hu.size,
                                labels.ctypes.data_as(c_float_p), ident, len(ident)))
    return hu, labels, ident.value.decode("ascii")


def phantom_tissues(patient, study, slice, **options):
    """The tissue of each pixel of the slice ``phantom_slice`` draws with the
    same options, as drawn: a (rows, columns) uint8 array of codes, named
    by ``PHANTOM_TISSUES`` (blood of type t is ``12 + t``, t indexing
    ``PHANTOM_TYPES``). The labels count these pixels."""
    o = _options(**options)
    patient = _int(patient, "patient", -2**31, 2**31 - 1)
    study = _int(study, "study", -2**31, 2**31 - 1)
    slice = _int(slice, "slice", -2**31, 2**31 - 1)
    tissue = np.empty((o.rows, o.columns), dtype=np.uint8)
    check(lib.ich_phantom_tissues(ctypes.byref(o), patient, study, slice,
                                  tissue.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                  tissue.size))
    return tissue
