"""Preprocessing a folder: every DICOM slice under it -> a windowed PNG
(libich's ich_preprocess_folder(), include/ich/pipeline.h; the call the
``ich-preprocess`` program makes)."""

import collections
import ctypes

from ._cancel import Interruptible, counts
from ._lib import _declare, lib
from ._util import INT32_MAX, fspath_bytes
from .phantom import PROGRESS_FN  # ich_progress_fn

__all__ = ["preprocess_folder", "PreprocessSummary"]



class _Options(ctypes.Structure):
    """Mirror of ``struct ich_preprocess_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("threads", ctypes.c_int32),
        ("overwrite", ctypes.c_int32),
        ("progress", PROGRESS_FN),
        ("progress_user", ctypes.c_void_p),
    ]


class _Summary(ctypes.Structure):
    """Mirror of ``struct ich_preprocess_summary``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("files", ctypes.c_int64),
        ("converted", ctypes.c_int64),
        ("existing", ctypes.c_int64),
        ("failed", ctypes.c_int64),
        ("skipped", ctypes.c_int64),
        ("threads", ctypes.c_int32),
    ]


#: What :func:`preprocess_folder` did: DICOM files found, PNGs written,
#: PNGs already there and kept, files that failed (logged by name),
#: entries of the walk not opened (FIFOs, devices, broken links), and the
#: worker threads used.
PreprocessSummary = collections.namedtuple(
    "PreprocessSummary", ["files", "converted", "existing", "failed", "skipped", "threads"])

_declare("ich_preprocess_options_init", None, ctypes.POINTER(_Options))
_declare("ich_preprocess_folder", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.c_void_p, ctypes.POINTER(_Options), ctypes.POINTER(_Summary))


def preprocess_folder(input_dir, output_dir, window, threads=0, overwrite=False, progress=None):
    """Convert every DICOM file under `input_dir` into a PNG under
    `output_dir` with the recipe `window` (an :class:`ich.Window` or its
    text): ``input_dir/SUB/NAME.dcm`` becomes ``output_dir/SUB/NAME.png``,
    and the recipe's line is written to ``output_dir/recipe.txt``.

    Files are found as :func:`ich.predict_files` finds them (*.dcm, *.dicom
    and files with the DICM marker; each real file once; FIFOs, devices and
    broken links skipped and counted). A file that cannot be converted is
    logged by name (:func:`ich.set_log_callback`), skipped and counted.
    PNGs already there are kept unless `overwrite`. `threads`: worker
    threads (0: one per CPU). `progress`, if given, is called as
    ``progress(done, total)`` with counts of files; returning True cancels
    (``CancelledError``; the PNGs written so far stay); Ctrl-C stops it too
    (``KeyboardInterrupt``).

    Returns a :class:`PreprocessSummary` ``(files, converted, existing,
    failed, skipped, threads)``. Raises ``IchIOError`` when `input_dir` is
    not a readable folder or `output_dir` cannot be written, and
    ``UnsupportedError`` for a recipe that does not make 1 or 3 channels.

    Under ``mpirun -np N python3 script.py`` every rank calls it with the
    same arguments: each converts its block of the sorted files, rank 0
    alone writes ``recipe.txt``, and every rank gets the summary of all
    (:mod:`ich.dist`; ``progress`` sees this rank's block, ``threads`` in
    the summary is this rank's). A rank that fails alone ends every rank
    with its message.
    """
    from . import _errors
    from .window import Window
    if isinstance(threads, bool) or int(threads) != threads or not 0 <= threads <= INT32_MAX:
        raise _errors.error(_errors.ERR_INVALID_ARGUMENT,
                            "threads must be an integer >= 0, not %r" % (threads,))
    owned = None
    if isinstance(window, str):
        window = owned = Window.from_string(window)
    elif not isinstance(window, Window):
        raise TypeError("window must be an ich.Window or its text")
    options = _Options()
    options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
    lib.ich_preprocess_options_init(ctypes.byref(options))
    options.threads = int(threads)
    options.overwrite = 1 if overwrite else 0
    summary = _Summary()
    summary.size = ctypes.sizeof(summary)
    # Always a callback of ours, so that Ctrl-C stops the C loop (ich._cancel).
    try:
        with Interruptible(progress) as guard:
            callback = PROGRESS_FN(guard.wrap(counts))
            options.progress = callback
            status = lib.ich_preprocess_folder(fspath_bytes(input_dir), fspath_bytes(output_dir),
                                               window._live(), ctypes.byref(options),
                                               ctypes.byref(summary))
    finally:
        if owned is not None:
            owned.close()
    guard.check(status)
    return PreprocessSummary(summary.files, summary.converted, summary.existing, summary.failed,
                             summary.skipped, summary.threads)
