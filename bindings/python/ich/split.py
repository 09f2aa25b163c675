"""Selecting files and splitting (``include/ich/labels.h``): copy or link the
images of a label table into a working folder, read each image's patient
from its DICOM file, and split a table into train/validation/test sets by
patient, stratified on the labels.

    result = ich.select_files(sample, "rsna/stage_2_train", "work/images",
                              mode="hardlink")
    ich.groups_from_dicom(result["found"], "work/images")
    train, val, test = ich.split_labels(result["found"], (0.8, 0.1, 0.1), seed=7)
"""

import ctypes
import numbers

from . import _errors
from ._cancel import Interruptible, counts
from ._errors import check
from ._lib import c_status, lib, _declare
from ._util import c_string, fspath_bytes
from .labels import Labels

__all__ = ["split_labels", "select_files", "groups_from_dicom"]

_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_i64p = ctypes.POINTER(ctypes.c_int64)

#: ich_progress_fn: int (*)(void *user, int64_t done, int64_t total, const char *what)
_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                ctypes.c_char_p)


class SplitOptions(ctypes.Structure):
    """Mirror of ``struct ich_split_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("ratios", ctypes.c_double * 3),
        ("seed", ctypes.c_uint64),
        ("stratify", ctypes.c_int32),
    ]


class SelectOptions(ctypes.Structure):
    """Mirror of ``struct ich_select_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("mode", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("extension", ctypes.c_char_p),
        ("progress", _PROGRESS_FN),
        ("progress_user", ctypes.c_void_p),
    ]


_declare("ich_split_options_init", None, ctypes.POINTER(SplitOptions))
_declare("ich_labels_split", c_status, _p, ctypes.POINTER(SplitOptions), _pp)
_declare("ich_select_options_init", None, ctypes.POINTER(SelectOptions))
_declare("ich_labels_select_files", c_status, _p, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(SelectOptions), _i64p, _i64p, _i64p, _pp)
_declare("ich_labels_groups_from_dicom", c_status, _p, ctypes.c_char_p, ctypes.c_int32, _i64p)

_MODES = {"copy": 0, "hardlink": 1, "symlink": 2}  # enum ich_select_mode


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _check_labels(labels):
    if not isinstance(labels, Labels):
        raise TypeError("labels must be an ich.Labels, not %s" % type(labels).__name__)
    return labels._live()


def _threads(threads):
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError("threads must be an int")
    if not 0 <= threads <= 1024:
        raise _invalid("threads must be in 0..1024 (0: one per CPU), not %d" % threads)
    return int(threads)


def split_labels(labels, ratios=(0.8, 0.1, 0.1), seed=0, stratify=True):
    """Split `labels` into (train, validation, test) :class:`Labels` by
    patient: all rows of a group land in one part (a row without a group is
    its own group), rows keep their order, and with `stratify` each label's
    positives are spread in about the same shares as the rows. `ratios` are
    three numbers >= 0 summing to 1 (within 1e-6); a 0 gives an empty part.
    The same table and seed give the same split. Raises
    ``InvalidArgumentError`` for bad ratios or an empty table. The method
    and its accuracy are described at ``ich_labels_split`` in labels.h."""
    handle = _check_labels(labels)
    ratios = tuple(ratios)
    if len(ratios) != 3 or not all(isinstance(r, numbers.Real) and not isinstance(r, bool)
                                   for r in ratios):
        raise _invalid("ratios must be three numbers (train, validation, test), not %r"
                       % (ratios,))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise _invalid("seed must be a non-negative int")
    options = SplitOptions()
    options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
    lib.ich_split_options_init(ctypes.byref(options))
    for i, r in enumerate(ratios):
        options.ratios[i] = float(r)
    options.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    options.stratify = 1 if stratify else 0
    parts = (_p * 3)()
    check(lib.ich_labels_split(handle, ctypes.byref(options), parts))
    return tuple(Labels._from_handle(parts[i]) for i in range(3))


def select_files(labels, src_dir, dst_dir, mode="copy", threads=0, extension=".dcm",
                 progress=None):
    """Put the images of `labels` (``src_dir/<id><extension>``, or found by
    file name anywhere under src_dir) into ``dst_dir/<id><extension>``, in
    parallel: ``mode`` "copy" (verified byte for byte), "hardlink" (a copy
    across file systems) or "symlink". A file already there with the same
    bytes is kept. `progress(done, total)` is called a few times a second
    from the calling thread; returning True cancels (``ich.CancelledError``);
    Ctrl-C stops the copying and raises KeyboardInterrupt. Returns ``dict(copied=, missing=, failed=, found=)``:
    the counts of images placed (kept ones included), not found, and found
    but not placed, and a :class:`Labels` of the rows whose image is now in
    dst_dir. Raises ``IchIOError`` when src_dir is not a readable folder or
    dst_dir cannot be created."""
    handle = _check_labels(labels)
    if mode not in _MODES:
        raise _invalid("mode must be one of %s, not %r" % (", ".join(_MODES), mode))
    options = SelectOptions()
    options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
    lib.ich_select_options_init(ctypes.byref(options))
    options.mode = _MODES[mode]
    options.threads = _threads(threads)
    extension = c_string(extension, "extension")
    options.extension = extension if extension is not None else b".dcm"
    tallies = [ctypes.c_int64() for _ in range(3)]
    found = ctypes.c_void_p()
    # Always a callback of ours, so that Ctrl-C stops the copying (ich._cancel).
    with Interruptible(progress) as guard:
        callback = _PROGRESS_FN(guard.wrap(counts))
        options.progress = callback
        status = lib.ich_labels_select_files(handle, fspath_bytes(src_dir), fspath_bytes(dst_dir),
                                             ctypes.byref(options),
                                             *[ctypes.byref(c) for c in tallies],
                                             ctypes.byref(found))
    guard.check(status)
    return {"copied": tallies[0].value, "missing": tallies[1].value, "failed": tallies[2].value,
            "found": Labels._from_handle(found)}


def groups_from_dicom(labels, image_dir, threads=0):
    """Set each row's group of `labels` (in place) to the PatientID of
    ``image_dir/<id>.dcm``, reading the files on `threads` threads (0: one
    per CPU). Rows whose file cannot be read, or has no PatientID, keep
    their group, as do rows whose ID cannot name a file inside `image_dir`
    (:func:`ich.image_path`'s rule: ``"../x"`` is never read). Returns the
    number of files that could not be read (refused IDs included)."""
    handle = _check_labels(labels)
    unreadable = ctypes.c_int64()
    with Interruptible() as guard:  # Ctrl-C stops the reading: KeyboardInterrupt
        status = lib.ich_labels_groups_from_dicom(handle, fspath_bytes(image_dir),
                                                  _threads(threads), ctypes.byref(unreadable))
    guard.check(status)
    return unreadable.value
