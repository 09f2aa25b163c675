"""The evaluation report: checkpoint + labelled images -> a report folder.

``ich.evaluate_report(checkpoint, labels_csv, image_dir, out_dir)`` writes
report.html (self-contained), roc.svg, confusion_<class>.svg, loss.svg and
accuracy.svg (when the checkpoint has a training history), metrics.csv,
metrics.json and predictions.csv, as the ``ich-evaluate`` program does (see
``include/ich/report.h``).
"""

import ctypes
import os
import pathlib

from ._cancel import Interruptible, counts
from ._lib import _declare, c_status, lib
from ._util import fspath_bytes
from .phantom import PROGRESS_FN

__all__ = ["evaluate_report", "EvaluateReport"]


class _Summary(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("rows", ctypes.c_int64),
                ("evaluated", ctypes.c_int64), ("left_out", ctypes.c_int64)]


class EvaluateReport(os.PathLike):
    """What :func:`evaluate_report` wrote: the report folder (a path-like
    object: ``report / "metrics.json"``, ``open(report / ...)``,
    ``os.fspath(report)``) and what it covers: ``rows`` of the label
    table, ``evaluated`` images, and ``left_out`` rows (no image, an ID
    that names no file inside the folder, or an image that could not be
    read; each was logged with its reason)."""

    def __init__(self, out_dir, rows, evaluated, left_out):
        self.out_dir = pathlib.Path(os.fspath(out_dir))
        self.rows, self.evaluated, self.left_out = int(rows), int(evaluated), int(left_out)

    def __fspath__(self):
        return os.fspath(self.out_dir)

    def __truediv__(self, name):
        return self.out_dir / name

    def __str__(self):
        return str(self.out_dir)

    def __repr__(self):
        return "EvaluateReport(%r, rows=%d, evaluated=%d, left_out=%d)" % (
            str(self.out_dir), self.rows, self.evaluated, self.left_out)


class _Options(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("batch_size", ctypes.c_int32),
        ("workers", ctypes.c_int32),
        ("threshold", ctypes.c_float),
        ("bootstrap", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("progress", PROGRESS_FN),
        ("progress_user", ctypes.c_void_p),
        # must match ich_evaluate_options to its end: the _init function
        # writes every field
        ("window", ctypes.c_void_p),
        ("summary", ctypes.POINTER(_Summary)),
    ]


_declare("ich_evaluate_options_init", None, ctypes.POINTER(_Options))
_declare("ich_evaluate_report", c_status, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.c_char_p, ctypes.POINTER(_Options))


def evaluate_report(checkpoint, labels_csv, image_dir, out_dir, batch_size=16, workers=0,
                    threshold=0.5, bootstrap=1000, seed=0, progress=None, window=None):
    """Evaluate the checkpoint on the images of `image_dir` labelled by
    `labels_csv` and write the report folder `out_dir` (created).

    batch_size: images per prediction batch. workers: threads loading each
    batch's images (0: the calling thread). threshold: the cascade preset's "any"
    threshold. bootstrap, seed: the AUC confidence interval's resamples
    (0: none) and seed. progress: None or ``progress(done, total)``; a true
    return value cancels (:class:`ich.CancelledError`); Ctrl-C stops the
    evaluation and raises KeyboardInterrupt. window: the input recipe (an
    :class:`ich.Window` or its text) for a checkpoint that carries none; by
    default the checkpoint's. Returns an :class:`EvaluateReport`: the folder (path-like)
    and how many rows it covers and left out. Raises IchError (IchIOError or
    FormatError for a bad checkpoint or CSV, NotFoundError for a checkpoint
    without a recipe and no `window`, ShapeError when the label columns
    differ from the model's outputs).

    Under ``mpirun -np N python3 script.py`` every rank calls it with the
    same arguments: each predicts its block of whole batches of the table,
    rank 0 alone computes the metrics and writes the report (the single
    process's files); every rank gets the counts of all (:mod:`ich.dist`).
    A rank that fails alone ends every rank with its message."""
    from .window import Window
    if isinstance(window, str):
        with Window.from_string(window) as parsed:
            return evaluate_report(checkpoint, labels_csv, image_dir, out_dir, batch_size,
                                   workers, threshold, bootstrap, seed, progress, parsed)
    if window is not None and not isinstance(window, Window):
        raise TypeError("window must be an ich.Window, a str or None")
    o = _Options()
    o.size = ctypes.sizeof(o)  # as the C macro does (ICH_SIZED)
    lib.ich_evaluate_options_init(ctypes.byref(o))
    o.window = window._live() if window is not None else None
    o.batch_size, o.workers, o.threshold = int(batch_size), int(workers), float(threshold)
    o.bootstrap, o.seed = int(bootstrap), int(seed)
    summary = _Summary(size=ctypes.sizeof(_Summary))
    o.summary = ctypes.pointer(summary)
    # Always a callback of ours, so that Ctrl-C stops the C loop (ich._cancel).
    with Interruptible(progress) as guard:
        callback = PROGRESS_FN(guard.wrap(counts))
        o.progress = callback
        status = lib.ich_evaluate_report(fspath_bytes(checkpoint), fspath_bytes(labels_csv),
                                         fspath_bytes(image_dir), fspath_bytes(out_dir),
                                         ctypes.byref(o))
    guard.check(status)
    return EvaluateReport(out_dir, summary.rows, summary.evaluated, summary.left_out)
