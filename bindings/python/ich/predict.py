"""Prediction: DICOM files or folders -> label probabilities with a trained
model, through libich's ich_predict_files() and ich_predict_folder()
(include/ich/pipeline.h), the calls the ``ich-predict`` program makes.

``ich.predict_files(model, paths_or_folder)`` returns the probabilities;
``ich.predict_folder(model, input, out_path)`` writes the predictions CSV.
Both read each DICOM file, apply the model's input recipe
(:meth:`ich.Model.input_window`, from the checkpoint's metadata, or a given
one) and predict in batches.
"""

import collections
import ctypes
import os
import warnings

import numpy as np

from ._cancel import Interruptible, counts
from ._lib import _declare, lib
from ._util import INT32_MAX, fspath_bytes
from .phantom import PROGRESS_FN  # ich_progress_fn

__all__ = ["predict_files", "predict_folder", "PredictSummary"]

#: ich_prediction_fn
_PREDICTION_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                  ctypes.c_char_p, ctypes.POINTER(ctypes.c_float),
                                  ctypes.c_int32, ctypes.c_char_p)

_FORMATS = {"csv": 0, "rsna": 1}


class _Options(ctypes.Structure):
    """Mirror of ``struct ich_predict_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("window", ctypes.c_void_p),
        ("threshold", ctypes.c_float),
        ("batch_size", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("format", ctypes.c_int32),
        ("stop_on_failure", ctypes.c_int32),
        ("progress", PROGRESS_FN),
        ("progress_user", ctypes.c_void_p),
    ]


class _Summary(ctypes.Structure):
    """Mirror of ``struct ich_predict_summary``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("files", ctypes.c_int64),
        ("predicted", ctypes.c_int64),
        ("failed", ctypes.c_int64),
        ("skipped", ctypes.c_int64),
    ]


#: What :func:`predict_folder` did: DICOM files found, images predicted,
#: files that failed (logged by name and left out of the file), entries
#: of the folder walk not opened (FIFOs, devices, broken links).
PredictSummary = collections.namedtuple("PredictSummary",
                                        ["files", "predicted", "failed", "skipped"])

_vp = ctypes.c_void_p
_declare("ich_predict_options_init", None, ctypes.POINTER(_Options))
_declare("ich_predict_files", ctypes.c_int, _vp, ctypes.POINTER(ctypes.c_char_p),
         ctypes.c_int64, ctypes.POINTER(_Options), _PREDICTION_FN, _vp,
         ctypes.POINTER(_Summary))
_declare("ich_predict_folder", ctypes.c_int, _vp, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(_Options), ctypes.POINTER(_Summary))


def _invalid(message):
    from . import _errors
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _options(batch_size, threshold, threads, window):
    """The C options, and the recipe made here (to close), if any."""
    from .window import Window
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if isinstance(threads, bool) or int(threads) != threads or not 0 <= threads <= INT32_MAX:
        raise _invalid("threads must be an integer >= 0, not %r" % (threads,))
    options = _Options()
    options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
    lib.ich_predict_options_init(ctypes.byref(options))
    options.batch_size = min(int(batch_size), 65536)
    options.threshold = float(threshold)
    options.threads = int(threads)
    owned = None  # a recipe made here is freed here; the caller's is left open
    if isinstance(window, str):
        window = owned = Window.from_string(window)
    elif window is not None and not isinstance(window, Window):
        raise TypeError("window must be an ich.Window, its text or None")
    if window is not None:
        options.window = window._live().value
    return options, owned


def _paths(paths_or_folder):
    if isinstance(paths_or_folder, (str, bytes, os.PathLike)):
        return [fspath_bytes(paths_or_folder)]
    return [fspath_bytes(p) for p in paths_or_folder]


def predict_files(model, paths_or_folder, batch_size=16, threshold=0.5, window=None,
                  threads=0, progress=None):
    """Probabilities for DICOM files (``ich_predict_files``).

    Arguments:
        model: an :class:`ich.Model` (e.g. ``ich.Model.load(checkpoint)``)
            whose metadata holds its input recipe.
        paths_or_folder: a folder (searched recursively for *.dcm, *.dicom
            and files with the DICM marker, sorted by path; each real file
            once, see :func:`ich.find_files`; FIFOs, devices and broken
            links are skipped with a ``RuntimeWarning``), one file, or a
            sequence of files (and folders).
        batch_size: images per forward pass.
        threshold: for a cascade model, P(any) <= threshold zeroes the subtypes.
        window: the input recipe (an :class:`ich.Window` or its text) for a
            model that carries none; by default the model's own
            (:meth:`ich.Model.input_window`, which raises ``NotFoundError``
            when the model has no recipe).
        threads: threads reading and windowing each batch's files (0: one
            per CPU).
        progress: called as ``progress(done, total)`` with counts of files;
            returning True cancels (``CancelledError``); Ctrl-C stops
            the call too (``KeyboardInterrupt``).

    Returns ``(ids, probabilities)``: the image IDs (file names without
    .dcm) and a float32 array (N, outputs). A file that cannot be read
    raises the library's :class:`ich.IchError` naming it (use
    :func:`predict_folder` to skip and count bad files instead).
    """
    options, owned = _options(batch_size, threshold, threads, window)
    options.stop_on_failure = 1
    ids, rows = [], []
    paths = _paths(paths_or_folder)
    array = (ctypes.c_char_p * max(len(paths), 1))(*paths)
    # Always a progress callback of ours, so that Ctrl-C stops the C loop
    # (ich._cancel); the row callback stops it too when it raises.
    try:
        with Interruptible(progress) as guard:
            def on_row(user, path, ident, probabilities, outputs, problem):
                if guard.stopping:
                    return 1
                try:
                    if probabilities:
                        ids.append(ident.decode("utf-8", "surrogateescape"))
                        rows.append(np.ctypeslib.as_array(probabilities, (outputs,)).copy())
                    elif ident is None:  # an entry the folder walk did not open
                        warnings.warn("%s: %s: skipped" % (os.fsdecode(path),
                                                            problem.decode("utf-8", "replace")),
                                      RuntimeWarning, stacklevel=4)
                    return 0
                except BaseException as exc:  # noqa: B902 (raised again by check())
                    if isinstance(exc, KeyboardInterrupt):
                        guard.interrupted = True
                    elif guard.raised is None:
                        guard.raised = exc
                    return 1

            callback = _PREDICTION_FN(on_row)
            progress_callback = PROGRESS_FN(guard.wrap(counts))
            options.progress = progress_callback
            status = lib.ich_predict_files(model._live(), array, len(paths),
                                           ctypes.byref(options), callback, None, None)
    finally:
        if owned is not None:
            owned.close()
    guard.check(status)
    out = np.stack(rows).astype(np.float32, copy=False) if rows else \
        np.empty((0, model.outputs), np.float32)
    return ids, out


def predict_folder(model, input, out_path, batch_size=16, threshold=0.5, window=None,
                   threads=0, format="csv", progress=None):
    """Predict one DICOM file or every DICOM file under a folder and write
    the predictions to `out_path` (``ich_predict_folder``), atomically.

    `format` is ``"csv"`` (``ID,<label>,...``, the model's label names as
    columns) or ``"rsna"`` (``ID,Label`` rows ``ID_<image>_<label>``). The
    other arguments are those of :func:`predict_files`. A file that cannot
    be read is logged by name (:func:`ich.set_log_callback`), skipped and
    counted; so are the folder walk's FIFOs, devices and broken links.

    Returns a :class:`PredictSummary` ``(files, predicted, failed,
    skipped)``. Raises ``NotFoundError`` for a missing input or a model
    without a recipe (and none given), ``IchIOError`` for an input that is
    neither a file nor a folder or an output that cannot be written.

    Under ``mpirun -np N python3 script.py`` every rank calls it with the
    same arguments: each predicts its block of whole batches of the sorted
    files, rank 0 alone writes `out_path` with every rank's rows in file
    order (the single process's file), and every rank gets the summary of
    all (:mod:`ich.dist`; ``progress`` sees this rank's block). A rank that
    fails alone ends every rank with its message. :func:`predict_files` is
    not shared: each process predicts every path it is given.
    """
    if format not in _FORMATS:
        raise _invalid("format must be \"csv\" or \"rsna\", not %r" % (format,))
    options, owned = _options(batch_size, threshold, threads, window)
    options.format = _FORMATS[format]
    summary = _Summary()
    summary.size = ctypes.sizeof(summary)
    # Always a callback of ours, so that Ctrl-C stops the C loop (ich._cancel).
    try:
        with Interruptible(progress) as guard:
            callback = PROGRESS_FN(guard.wrap(counts))
            options.progress = callback
            status = lib.ich_predict_folder(model._live(), fspath_bytes(input),
                                            fspath_bytes(out_path), ctypes.byref(options),
                                            ctypes.byref(summary))
    finally:
        if owned is not None:
            owned.close()
    guard.check(status)
    return PredictSummary(summary.files, summary.predicted, summary.failed, summary.skipped)
