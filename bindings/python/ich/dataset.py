"""The dataset handle: labelled DICOM or PNG images -> float32 batches.

``ich.Dataset`` joins a label table with a folder of images and gives
samples (float32 CHW image, float32 labels) and shuffled batches (NCHW),
loaded by libich's worker threads ahead of the training loop. See
``include/ich/dataset.h`` for the exact pipeline.
"""

import ctypes
import numbers
import os

import numpy as np

from . import _errors
from ._cancel import Interruptible
from ._errors import check
from ._lib import _declare, c_float_p, c_status, lib
from ._util import OwnedHandle, INT32_MAX, c_string, fspath_bytes
from .labels import Labels
from .window import Window

__all__ = ["Dataset"]

c_int64_p = ctypes.POINTER(ctypes.c_int64)


class _Options(ctypes.Structure):
    """Mirror of ``struct ich_dataset_options`` (include/ich/dataset.h)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("window", ctypes.c_void_p),
        ("augment", ctypes.c_void_p),
        ("batch_size", ctypes.c_int32),
        ("shuffle", ctypes.c_int32),
        ("drop_last", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("workers", ctypes.c_int32),
        ("prefetch", ctypes.c_int32),
        ("neighbors", ctypes.c_int32),
        ("metadata_csv", ctypes.c_char_p),
        ("extension", ctypes.c_char_p),
        ("model", ctypes.c_void_p),
    ]


_P = ctypes.c_void_p
_declare("ich_dataset_options_init", None, ctypes.POINTER(_Options))
_declare("ich_dataset_open", c_status, _P, ctypes.c_char_p, ctypes.POINTER(_Options),
         ctypes.POINTER(_P))
_declare("ich_dataset_open_csv", c_status, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(_Options), ctypes.POINTER(_P))
_declare("ich_dataset_free", None, _P)
_declare("ich_dataset_batch_size", ctypes.c_int32, _P)
_declare("ich_dataset_input_window", c_status, _P, ctypes.POINTER(ctypes.c_void_p))
_declare("ich_dataset_length", ctypes.c_int64, _P)
_declare("ich_dataset_labels", _P, _P)
_declare("ich_dataset_sample_shape", c_status, _P, ctypes.POINTER(ctypes.c_int32),
         ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32),
         ctypes.POINTER(ctypes.c_int32))
_declare("ich_dataset_get", c_status, _P, ctypes.c_int64, ctypes.c_int, ctypes.c_int64,
         c_float_p, ctypes.c_size_t, c_float_p, ctypes.c_size_t)
_declare("ich_dataset_batches", ctypes.c_int64, _P)
_declare("ich_dataset_left_out", ctypes.c_int64, _P)
_declare("ich_dataset_start_epoch", c_status, _P, ctypes.c_int64)
_declare("ich_dataset_set_positive_only", c_status, _P, ctypes.c_char_p)
_declare("ich_dataset_positive_only", ctypes.c_char_p, _P)
_declare("ich_dataset_next_batch", c_status, _P, c_float_p, ctypes.c_size_t, c_float_p,
         ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32), c_int64_p)


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _int(value, name, low=0, high=INT32_MAX):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid("%s must be an integer, not %r" % (name, value))
    value = int(value)
    if not low <= value <= high:
        raise _invalid("%s must be in %d..%d, got %d" % (name, low, high, value))
    return value


class Dataset(OwnedHandle):
    """Labelled images as training samples and batches.

    Arguments:
        labels: an :class:`ich.Labels` table (copied) or the path of a label
            CSV (read with ``ich.Labels.read``'s rules).
        image_dir: the folder with ``<id>.dcm`` or ``<id>.png`` files.
        window: the recipe for DICOM images: an :class:`ich.Window` (its
            own size and normalisation apply; `size` is ignored), a string
            of windows such as ``"blood,brain,bone"`` (resized to `size`),
            or None for ``"blood,brain,bone"`` at `size`. PNG images are
            scaled to [0, 1], resized to the recipe's size and normalised
            with its mean/std.
        size: output size for a string or None `window`: an int N (N x N)
            or a (rows, columns) pair; None keeps the images' size.
        augment: an :class:`ich.Augment` (or its text form, e.g.
            ``"hflip:0.5,rotate:0.5:15"``) applied to every sample of a
            batch (online augmentation, seeded by seed, epoch and sample);
            None for none. Copied at open.
        batch_size, shuffle, drop_last, seed: batches of `batch_size`, in
            a seeded shuffled order per epoch (or table order), leaving out
            a last smaller batch when `drop_last`.
        workers, prefetch: loading threads (0: load on the calling thread)
            and batches loaded ahead.
        neighbors: k slices of the same series on each side stacked as
            extra channels ((2k + 1) x the channels of one slice).
        metadata_csv: CSV with columns ID, series, z giving the series and
            position of PNG images (for `neighbors`).
        extension: ".dcm" or ".png"; None looks for .dcm, then .png.
        model: an :class:`ich.Model` whose labels the table's label columns
            are matched to by name (ignoring case) and put in the order of
            its outputs, as ``Labels.match`` does; a table without exactly
            the model's labels raises ShapeError naming its columns and the
            model's labels. None keeps the table's columns as they are.

    Images that are missing, and rows whose ID cannot name a file inside
    `image_dir` (:func:`ich.image_path`'s rule: ``"../x"`` is never read),
    are left out at open (logged with the ID and row). A sample that
    cannot be loaded is left out of its batch (logged once), so a batch may
    be smaller than `batch_size`. Use as a context manager or call
    :meth:`close` to stop the workers early. A Dataset is used from one
    thread at a time.
    """

    _free = staticmethod(lib.ich_dataset_free)

    def __init__(self, labels, image_dir, window=None, size=256, augment=None, batch_size=16,
                 shuffle=True, drop_last=False, seed=0, workers=2, prefetch=2, neighbors=0,
                 metadata_csv=None, extension=None, model=None):
        self._handle = None
        self._labels = None
        options = _Options()
        options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
        lib.ich_dataset_options_init(ctypes.byref(options))
        options.batch_size = _int(batch_size, "batch_size", 1)
        options.shuffle = 1 if shuffle else 0
        options.drop_last = 1 if drop_last else 0
        options.seed = _int(seed, "seed", 0, 2**64 - 1)
        options.workers = _int(workers, "workers")
        options.prefetch = _int(prefetch, "prefetch", 1)
        options.neighbors = _int(neighbors, "neighbors")
        metadata = None if metadata_csv is None else fspath_bytes(metadata_csv)
        options.metadata_csv = metadata
        options.extension = c_string(extension, "extension")
        if model is not None:
            if getattr(model, "_handle", None) is None:
                raise TypeError("model must be an ich.Model or None, not %r" % (model,))
            options.model = model._live()
        own_augment = None
        if isinstance(augment, (str, bytes)):
            from .augment import Augment
            own_augment = augment = Augment(augment)
        if augment is not None:
            if getattr(augment, "_handle", None) is None:
                raise TypeError("augment must be an ich.Augment, a str or None, not %r"
                                % (augment,))
            options.augment = augment._handle
        own_window = None
        if window is None or isinstance(window, (str, bytes)):
            own_window = Window("blood,brain,bone" if window is None else window, size=size)
            window = own_window
        elif getattr(window, "_handle", None) is None:
            raise TypeError("window must be an ich.Window, a str or None, not %r" % (window,))
        options.window = window._handle
        handle = _P()
        try:
            directory = fspath_bytes(image_dir)
            if getattr(labels, "_handle", None) is not None:
                open_call = lib.ich_dataset_open
                source = labels._handle
            elif isinstance(labels, (str, bytes, os.PathLike)):
                open_call = lib.ich_dataset_open_csv
                source = fspath_bytes(labels)
            else:
                raise TypeError("labels must be an ich.Labels or a CSV path, not %r" % (labels,))
            # Reading many DICOM headers (neighbors) takes a while: Ctrl-C stops it.
            with Interruptible() as guard:
                status = open_call(source, directory, ctypes.byref(options), ctypes.byref(handle))
            guard.check(status)
        finally:
            if own_window is not None:
                own_window.close()
            if own_augment is not None:
                own_augment.close()
        self._handle = handle
        c, r, w, n = (ctypes.c_int32() for _ in range(4))
        check(lib.ich_dataset_sample_shape(handle, ctypes.byref(c), ctypes.byref(r),
                                           ctypes.byref(w), ctypes.byref(n)))
        self._shape = (c.value, r.value, w.value)
        self._label_count = n.value

    # ---- queries ------------------------------------------------------------

    def __len__(self):
        return int(lib.ich_dataset_length(self._live()))

    @property
    def sample_shape(self):
        """(channels, rows, columns) of one sample."""
        return self._shape

    @property
    def label_count(self):
        """Number of label columns."""
        return self._label_count

    def input_window(self):
        """The recipe this dataset applies, as a new :class:`ich.Window`,
        with its neighbouring slices recorded: what
        ``Model.set_input_window()`` should store (``ich.train()`` does)."""
        handle = ctypes.c_void_p()
        check(lib.ich_dataset_input_window(self._live(), ctypes.byref(handle)))
        return Window._adopt(handle)

    @property
    def batch_size(self):
        """Samples per batch."""
        return int(lib.ich_dataset_batch_size(self._live()))

    @property
    def num_batches(self):
        """Batches per epoch."""
        return int(lib.ich_dataset_batches(self._live()))

    @property
    def left_out(self):
        """Rows of the label table left out so far: at open (no image, or
        an ID that cannot name a file in the folder) and while loading (a
        file that could not be read, logged once with the reason)."""
        return int(lib.ich_dataset_left_out(self._live()))

    @property
    def labels(self):
        """The dataset's label table (an :class:`ich.Labels` copy; rows in
        sample order, without the images that were missing)."""
        if self._labels is None:
            copy = ctypes.c_void_p()
            check(lib.ich_labels_copy(lib.ich_dataset_labels(self._live()), ctypes.byref(copy)))
            self._labels = Labels._from_handle(copy)
        return self._labels

    def set_positive_only(self, column):
        """Draw only the rows whose label in `column` (a label column's
        name, ignoring case) is positive (>= 0.5), e.g. ``"any"`` for a
        cascade's second stage; None draws every row again. ``len()``,
        :attr:`num_batches`, :meth:`get`'s indices and the batches then
        count only those rows (full batches of positives), while
        :attr:`labels` keeps every row (the batches' ``rows`` index it) and
        neighbouring slices still come from every row. Abandons an
        unfinished epoch. Raises NotFoundError for an unknown column."""
        check(lib.ich_dataset_set_positive_only(self._live(), c_string(column, "column")))

    @property
    def positive_only(self):
        """The column of :meth:`set_positive_only`, or None."""
        value = lib.ich_dataset_positive_only(self._live())
        return None if value is None else value.decode()

    # ---- samples ------------------------------------------------------------

    def get(self, index, augment=False, epoch=0):
        """Sample `index` (table order, among the rows drawn: see
        :meth:`set_positive_only`; negative counts from the end) as
        (x float32 (C, H, W), y float32 (labels,)); with `augment`, the
        online augmentation of epoch `epoch` is applied."""
        length = len(self)
        index = _int(index, "index", -length, length - 1) if length else _int(index, "index")
        if index < 0:
            index += length
        epoch = _int(epoch, "epoch", 0, 2**63 - 1)
        x = np.empty(self._shape, dtype=np.float32)
        y = np.empty(self._label_count, dtype=np.float32)
        check(lib.ich_dataset_get(self._live(), index, 1 if augment else 0, epoch,
                                  x.ctypes.data_as(c_float_p), x.size,
                                  y.ctypes.data_as(c_float_p), y.size))
        return x, y

    def __getitem__(self, index):
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError("Dataset indices must be integers, not %s" % type(index).__name__)
        length = len(self)
        if not -length <= index < length:
            raise IndexError("Dataset index %d out of range (length %d)" % (index, length))
        return self.get(index)

    def batches(self, epoch=0):
        """Generator over the batches of epoch `epoch`: (x float32 (N, C, H,
        W), y float32 (N, labels), rows int64 (N,)), fresh arrays each time;
        N is batch_size except for a last partial batch or when samples fail
        to load. Starting it (or another epoch) abandons an unfinished one."""
        handle = self._live()
        check(lib.ich_dataset_start_epoch(handle, _int(epoch, "epoch", 0, 2**63 - 1)))
        count = ctypes.c_int32()
        while True:
            x = np.empty((self.batch_size,) + self._shape, dtype=np.float32)
            y = np.empty((self.batch_size, self._label_count), dtype=np.float32)
            rows = np.empty(self.batch_size, dtype=np.int64)
            check(lib.ich_dataset_next_batch(self._live(), x.ctypes.data_as(c_float_p), x.size,
                                             y.ctypes.data_as(c_float_p), y.size,
                                             ctypes.byref(count), rows.ctypes.data_as(c_int64_p)))
            n = count.value
            if n == 0:
                return
            if n < self.batch_size:
                x, y, rows = x[:n].copy(), y[:n].copy(), rows[:n].copy()
            yield x, y, rows

    def __repr__(self):
        if not self._handle:
            return "<ich.Dataset (closed)>"
        return "<ich.Dataset of %d samples %s, %d labels, batches of %d>" % (
            len(self), "x".join(map(str, self._shape)), self._label_count, self.batch_size)
