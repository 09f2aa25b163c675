"""Label tables: RSNA long or wide label CSVs, the ``any`` check, scan-level
labels propagated to slices, and balanced sampling (``include/ich/labels.h``).

    labels = ich.Labels.read("stage_2_train.csv")   # long or wide
    labels.check_any(fix=True)
    sample = ich.sample_labels(labels, per_label=10000, seed=1)
    sample.write("sample.csv")

A table has one row per image: the image ID, one float32 value per label
column and an optional group (the patient). Column names are matched
ignoring case; the default columns are :func:`label_names`.
"""

import ctypes
import numbers

import numpy as np

from . import _errors
from ._errors import check
from ._lib import c_float_p, c_status, lib, _declare
from ._util import OwnedHandle, c_string, fspath_bytes

__all__ = ["Labels", "label_names", "propagate_labels", "sample_labels"]

_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_i64p = ctypes.POINTER(ctypes.c_int64)


class SampleOptions(ctypes.Structure):
    """Mirror of ``struct ich_sample_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("per_label", ctypes.c_int64),
        ("seed", ctypes.c_uint64),
        ("negatives", ctypes.c_int32),
    ]


_declare("ich_label_name", ctypes.c_char_p, ctypes.c_int)
_declare("ich_labels_create", c_status, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int32, _pp)
_declare("ich_labels_free", None, _p)
_declare("ich_labels_copy", c_status, _p, _pp)
_declare("ich_labels_add", c_status, _p, ctypes.c_char_p, c_float_p, ctypes.c_char_p)
_declare("ich_labels_rows", ctypes.c_int64, _p)
_declare("ich_labels_columns", ctypes.c_int32, _p)
_declare("ich_labels_column_name", ctypes.c_char_p, _p, ctypes.c_int32)
_declare("ich_labels_find_column", ctypes.c_int32, _p, ctypes.c_char_p)
_declare("ich_labels_id", ctypes.c_char_p, _p, ctypes.c_int64)
_declare("ich_labels_values", c_float_p, _p, ctypes.c_int64)
_declare("ich_labels_group", ctypes.c_char_p, _p, ctypes.c_int64)
_declare("ich_labels_set_group", c_status, _p, ctypes.c_int64, ctypes.c_char_p)
_declare("ich_labels_find", ctypes.c_int64, _p, ctypes.c_char_p)
_declare("ich_labels_positives", c_status, _p, _i64p, ctypes.c_int32)
_declare("ich_labels_read", c_status, ctypes.c_char_p, _pp)
_declare("ich_labels_write", c_status, _p, ctypes.c_char_p)
_declare("ich_labels_write_long", c_status, _p, ctypes.c_char_p)
_declare("ich_labels_check_any", c_status, _p, ctypes.c_int, _i64p)
_declare("ich_labels_propagate", c_status, ctypes.c_char_p, ctypes.c_char_p, _pp)
_declare("ich_sample_options_init", None, ctypes.POINTER(SampleOptions))
_declare("ich_labels_sample", c_status, _p, ctypes.POINTER(SampleOptions), _pp)
_declare("ich_labels_of_model", c_status, _p, _pp)
_declare("ich_labels_match_model", c_status, _p, _p, ctypes.c_char_p, ctypes.c_char_p, _pp)


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _text(value):
    return value.decode("utf-8", "replace")


def label_names():
    """The six RSNA label names in libich's order: any, epidural,
    intraparenchymal, intraventricular, subarachnoid, subdural."""
    names = []
    while True:
        name = lib.ich_label_name(len(names))
        if name is None:
            return names
        names.append(_text(name))


class Labels(OwnedHandle):
    """A label table (``ich_labels``): one row per image.

    ``Labels(columns=None)`` makes an empty table with the given label
    columns (None: the six RSNA labels). Read one with :meth:`read`.

    ``len(labels)`` is the number of rows; ``columns``, ``ids``, ``values``
    (float32 rows x columns, a copy) and ``groups`` ("" for none) give the
    content. Use as a context manager or call :meth:`close` to free the C
    table early. A table is used by one thread at a time.
    """

    _free = staticmethod(lib.ich_labels_free)

    def __init__(self, columns=None):
        self._handle = None
        handle = ctypes.c_void_p()
        if columns is None:
            check(lib.ich_labels_create(None, 0, ctypes.byref(handle)))
        else:
            if isinstance(columns, (str, bytes)):
                raise TypeError("columns must be a sequence of names, not a single string")
            names = [c_string(name, "column name") for name in columns]
            array = (ctypes.c_char_p * max(len(names), 1))(*names)
            check(lib.ich_labels_create(array, len(names), ctypes.byref(handle)))
        self._handle = handle

    @classmethod
    def _from_handle(cls, handle):
        """Wrap a C ``ich_labels *`` (a ctypes.c_void_p or int), taking
        ownership: it is freed with the object."""
        self = cls.__new__(cls)
        if isinstance(handle, ctypes.c_void_p):
            handle = handle.value
        if not handle:
            raise _invalid("Labels._from_handle: NULL handle")
        self._handle = ctypes.c_void_p(handle)
        return self

    @classmethod
    def read(cls, path):
        """Read a label CSV, long (RSNA ``ID,Label``) or wide; see
        ``ich_labels_read`` in labels.h. Raises FormatError naming the file
        and line, IchIOError when the file cannot be read."""
        handle = ctypes.c_void_p()
        check(lib.ich_labels_read(fspath_bytes(path), ctypes.byref(handle)))
        return cls._from_handle(handle)

    # ---- content ------------------------------------------------------------

    def __len__(self):
        return int(lib.ich_labels_rows(self._live()))

    def __repr__(self):
        if self._handle is None:
            return "<ich.Labels (closed)>"
        return "<ich.Labels %d rows x %s>" % (len(self), self.columns)

    @property
    def columns(self):
        """The label column names (list of str)."""
        handle = self._live()
        return [_text(lib.ich_labels_column_name(handle, c))
                for c in range(lib.ich_labels_columns(handle))]

    @property
    def ids(self):
        """The image IDs, in row order (list of str)."""
        handle = self._live()
        return [_text(lib.ich_labels_id(handle, r)) for r in range(len(self))]

    @property
    def groups(self):
        """The group (patient) of each row, "" for none (list of str)."""
        handle = self._live()
        return [_text(lib.ich_labels_group(handle, r)) for r in range(len(self))]

    @property
    def values(self):
        """The label values as a new float32 array, rows x columns."""
        handle = self._live()
        rows, columns = len(self), lib.ich_labels_columns(handle)
        if rows == 0:
            return np.zeros((0, columns), dtype=np.float32)
        # rows are contiguous in the table (labels.h): copy them in one go
        pointer = lib.ich_labels_values(handle, 0)
        return np.ctypeslib.as_array(pointer, shape=(rows, columns)).copy()

    def copy(self):
        """A new, independent table with the same columns and rows."""
        handle = ctypes.c_void_p()
        check(lib.ich_labels_copy(self._live(), ctypes.byref(handle)))
        return Labels._from_handle(handle)

    def match(self, model, source=None, model_source=None):
        """A new table with this table's rows and its label columns matched
        to ``model``'s labels (:attr:`ich.Model.labels`) by name, ignoring
        case, in the order of the model's outputs: a CSV in the tutorial's
        column order gives the same numbers as one in libich's. A model
        without "ich.labels" metadata is taken to have the six RSNA labels
        when it has 6 outputs; with another count, columns are taken in
        order only when as many (a warning is logged). Raises ShapeError
        (naming `source`, the columns, the model's labels, what is missing
        and what is unknown) when they do not match; `source` and
        `model_source` name the table and the model in that message."""
        if getattr(model, "_handle", None) is None:
            raise TypeError("model must be an ich.Model, not %r" % (model,))
        handle = ctypes.c_void_p()
        check(lib.ich_labels_match_model(
            self._live(), model._live(),
            None if source is None else fspath_bytes(source),
            None if model_source is None else fspath_bytes(model_source), ctypes.byref(handle)))
        return Labels._from_handle(handle)

    def add(self, id, values, group=None):
        """Append a row: image `id`, one value per column, optional group."""
        handle = self._live()
        array = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        columns = lib.ich_labels_columns(handle)
        if array.size != columns:
            raise _errors.error(_errors.ERR_SHAPE, "add: %d values for %d columns"
                                % (array.size, columns))
        check(lib.ich_labels_add(handle, c_string(id, "id"), array.ctypes.data_as(c_float_p),
                                 c_string(group, "group")))

    def find(self, id):
        """Row of image `id`, or -1."""
        return int(lib.ich_labels_find(self._live(), c_string(id, "id")))

    def find_column(self, name):
        """Index of the column `name` (ignoring case), or -1."""
        return int(lib.ich_labels_find_column(self._live(), c_string(name, "name")))

    def set_group(self, row, group):
        """Set the group of `row` (None or "" clears it)."""
        if not isinstance(row, numbers.Integral):
            raise TypeError("row must be an int")
        check(lib.ich_labels_set_group(self._live(), int(row), c_string(group, "group")))

    def positives(self):
        """Number of rows with value >= 0.5, per column (int64 array)."""
        handle = self._live()
        counts = np.zeros(lib.ich_labels_columns(handle), dtype=np.int64)
        check(lib.ich_labels_positives(handle, counts.ctypes.data_as(_i64p), len(counts)))
        return counts

    def check_any(self, fix=False):
        """Count rows where "any" is not the OR of the other columns (each is
        logged as a warning); with `fix`, set "any" to the OR there. Raises
        NotFoundError without an "any" column."""
        mismatches = ctypes.c_int64()
        check(lib.ich_labels_check_any(self._live(), 1 if fix else 0,
                                       ctypes.byref(mismatches)))
        return mismatches.value

    # ---- files ----------------------------------------------------------------

    def write(self, path):
        """Write a wide CSV (``ID,<columns>[,patient]``), atomically."""
        check(lib.ich_labels_write(self._live(), fspath_bytes(path)))

    def write_long(self, path):
        """Write RSNA's long format (``ID,Label`` with ``<id>_<column>``)."""
        check(lib.ich_labels_write_long(self._live(), fspath_bytes(path)))


def propagate_labels(root, scan_csv):
    """Scan-level labels to slices: `root`/<patient>/<scan>/<slice>.dcm|png
    and a CSV with one row per scan (patient, scan and label columns) give a
    :class:`Labels` with one row per slice, ID "<patient>/<scan>/<slice>"
    and the patient as group."""
    handle = ctypes.c_void_p()
    check(lib.ich_labels_propagate(fspath_bytes(root), fspath_bytes(scan_csv),
                                   ctypes.byref(handle)))
    return Labels._from_handle(handle)


def sample_labels(labels, per_label, seed=0, negatives=True):
    """Balanced sample of `labels`: `per_label` images positive for each
    column (all when fewer), plus `per_label` images with no positive label
    when `negatives`; an image is taken once; rows keep their order. The
    same seed gives the same sample. Returns a new :class:`Labels`."""
    if not isinstance(labels, Labels):
        raise TypeError("labels must be an ich.Labels")
    if isinstance(per_label, bool) or not isinstance(per_label, numbers.Integral):
        raise TypeError("per_label must be an int")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise _invalid("seed must be a non-negative int")
    options = SampleOptions()
    options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
    lib.ich_sample_options_init(ctypes.byref(options))
    options.per_label = int(per_label)
    options.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    options.negatives = 1 if negatives else 0
    handle = ctypes.c_void_p()
    check(lib.ich_labels_sample(labels._live(), ctypes.byref(options), ctypes.byref(handle)))
    return Labels._from_handle(handle)
