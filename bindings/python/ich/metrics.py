"""Evaluation metrics of multi-label probabilities (``include/ich/metrics.h``).

    m = ich.Metrics()                      # the six RSNA labels
    for probs, labels in batches:          # numpy N x 6 each
        m.update(probs, labels)
    r = m.compute()
    r["auc"][0], r["confusion"][0], r["rsna_log_loss"]

Definitions follow scikit-learn 1.2 (roc_auc_score, average_precision_score,
roc_curve(drop_intermediate=False), confusion_matrix of ``p > 0.5``: p = 0.5
exactly predicts 0, as in training accuracy; Youden thresholds t predict
``p >= t`` as roc_curve does); a
label counts as positive when it is >= 0.5 (labels must lie in [0, 1]).
Values that are undefined (a class without positives or negatives, a zero
denominator) are ``None``, never NaN. See the C header for the losses.
"""

import ctypes
import math

import numpy as np

from ._errors import check
from ._lib import c_float_p, c_status, lib, _declare
from ._util import OwnedHandle, c_string

__all__ = ["Metrics"]

_p = ctypes.c_void_p
_d_p = ctypes.POINTER(ctypes.c_double)

# Bits of the `defined` fields.
_ACCURACY, _PRECISION, _RECALL, _SPECIFICITY, _F1 = 1, 2, 4, 8, 16
_AUC, _AP, _YOUDEN, _AUC_CI = 32, 64, 128, 256
_BCE, _RSNA = 512, 1024


class _At(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("threshold", ctypes.c_double),
        ("tn", ctypes.c_int64), ("fp", ctypes.c_int64),
        ("fn", ctypes.c_int64), ("tp", ctypes.c_int64),
        ("accuracy", ctypes.c_double), ("precision", ctypes.c_double),
        ("recall", ctypes.c_double), ("specificity", ctypes.c_double),
        ("f1", ctypes.c_double),
        ("defined", ctypes.c_uint32),
    ]


class _ClassResult(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("positives", ctypes.c_int64), ("negatives", ctypes.c_int64),
        ("at_half", _At), ("at_youden", _At),
        ("youden_threshold", ctypes.c_double), ("youden_j", ctypes.c_double),
        ("auc", ctypes.c_double), ("auc_low", ctypes.c_double), ("auc_high", ctypes.c_double),
        ("average_precision", ctypes.c_double),
        ("roc_points", ctypes.c_int64),
        ("defined", ctypes.c_uint32),
    ]


class _Summary(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("samples", ctypes.c_int64), ("classes", ctypes.c_int32),
        ("accuracy_overall", ctypes.c_double), ("bce", ctypes.c_double),
        ("rsna_log_loss", ctypes.c_double), ("macro_auc", ctypes.c_double),
        ("macro_average_precision", ctypes.c_double), ("macro_f1", ctypes.c_double),
        ("defined", ctypes.c_uint32),
    ]


class _Options(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("bootstrap", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("confidence", ctypes.c_double),
    ]


_declare("ich_metrics_options_init", None, ctypes.POINTER(_Options))
_declare("ich_metrics_create", c_status, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int32,
         ctypes.c_int, ctypes.POINTER(_p))
_declare("ich_metrics_free", None, _p)
_declare("ich_metrics_reset", None, _p)
_declare("ich_metrics_update", c_status, _p, c_float_p, c_float_p, ctypes.c_int64,
         ctypes.c_int32)
_declare("ich_metrics_samples", ctypes.c_int64, _p)
_declare("ich_metrics_classes", ctypes.c_int32, _p)
_declare("ich_metrics_class_name", ctypes.c_char_p, _p, ctypes.c_int32)
_declare("ich_metrics_compute", c_status, _p, ctypes.POINTER(_Options))
_declare("ich_metrics_class", c_status, _p, ctypes.c_int32, ctypes.POINTER(_ClassResult))
_declare("ich_metrics_summary", c_status, _p, ctypes.POINTER(_Summary))
_declare("ich_metrics_roc", c_status, _p, ctypes.c_int32, _d_p, _d_p, _d_p, ctypes.c_int64)


def _value(x, defined, bit):
    """A float, or None where the C result marks it undefined."""
    if not (defined & bit) or math.isnan(x):
        return None
    return float(x)


def _as_matrix(a, name, columns):
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 1 and columns == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape[1] != columns:
        from . import _errors
        raise _errors.error(_errors.ERR_SHAPE, "Metrics.update: %s has shape %s, expected "
                            "(N, %d)" % (name, a.shape, columns))
    return np.ascontiguousarray(a)


class Metrics(OwnedHandle):
    """Accumulates probabilities (or logits, ``logits=True``) and labels,
    numpy ``N x classes`` each, over many :meth:`update` calls; :meth:`compute`
    returns every metric as a dict (see :meth:`compute`).

    ``names``: the class names (default the six RSNA labels); a class named
    ``any`` weighs 2 in the RSNA log loss. ``bootstrap``, ``seed`` and
    ``confidence`` set the AUC confidence interval (0 resamples: none).
    """

    _free = staticmethod(lib.ich_metrics_free)

    def __init__(self, names=None, logits=False, bootstrap=1000, seed=0, confidence=0.95):
        self._handle = None
        handle = _p()
        if names is None:
            check(lib.ich_metrics_create(None, 0, int(bool(logits)), ctypes.byref(handle)))
        else:
            if isinstance(names, (str, bytes)):
                raise TypeError("names must be a sequence of names, not a single string")
            encoded = [c_string(name, "class name") for name in names]
            array = (ctypes.c_char_p * max(len(encoded), 1))(*encoded)
            check(lib.ich_metrics_create(array, len(encoded), int(bool(logits)),
                                         ctypes.byref(handle)))
        self._handle = handle
        self._options = _Options()
        self._options.size = ctypes.sizeof(self._options)  # as the C macro does (ICH_SIZED)
        lib.ich_metrics_options_init(ctypes.byref(self._options))
        self._options.bootstrap = int(bootstrap)
        self._options.seed = int(seed)
        self._options.confidence = float(confidence)

    @property
    def classes(self):
        """The class names, in column order."""
        h = self._live()
        return [lib.ich_metrics_class_name(h, i).decode("utf-8")
                for i in range(lib.ich_metrics_classes(h))]

    def __len__(self):
        """Rows added so far."""
        return int(lib.ich_metrics_samples(self._live()))

    def reset(self):
        """Forget every row added so far."""
        lib.ich_metrics_reset(self._live())

    def update(self, probabilities, labels):
        """Add rows: ``probabilities`` (or logits) and ``labels``, arrays of
        shape (N, classes) (a 1-D array when there is one class). Raises
        ShapeError for a wrong shape, InvalidArgumentError for NaN, scores
        outside [0, 1] (probabilities) or labels outside [0, 1]; nothing is
        added then."""
        h = self._live()
        k = lib.ich_metrics_classes(h)
        p = _as_matrix(probabilities, "probabilities", k)
        y = _as_matrix(labels, "labels", k)
        if p.shape[0] != y.shape[0]:
            from . import _errors
            raise _errors.error(_errors.ERR_SHAPE, "Metrics.update: %d rows of probabilities, "
                                "%d of labels" % (p.shape[0], y.shape[0]))
        check(lib.ich_metrics_update(h, p.ctypes.data_as(c_float_p),
                                     y.ctypes.data_as(c_float_p), p.shape[0], k))

    def compute(self):
        """Every metric as a dict. Per class (lists in column order):
        ``auc``, ``auc_ci`` ((low, high) or None), ``average_precision``,
        ``accuracy``, ``precision``, ``recall``, ``specificity``, ``f1``,
        ``confusion`` ([[tn, fp], [fn, tp]]) at threshold 0.5;
        ``youden_threshold`` and the same ratios there in ``youden`` (a dict
        per class); ``roc`` ((fpr, tpr, thresholds) numpy arrays, the first
        threshold +inf); ``positives``, ``negatives``. Overall:
        ``accuracy_overall``, ``bce``, ``rsna_log_loss``, ``macro_auc``,
        ``macro_average_precision``, ``macro_f1``, ``samples``, ``classes``.
        Undefined values are None."""
        h = self._live()
        check(lib.ich_metrics_compute(h, ctypes.byref(self._options)))
        names = self.classes
        r = {key: [] for key in ("auc", "auc_ci", "average_precision", "accuracy", "precision",
                                 "recall", "specificity", "f1", "confusion", "youden_threshold",
                                 "youden", "roc", "positives", "negatives")}
        for i in range(len(names)):
            c = _ClassResult()
            c.size = ctypes.sizeof(c)
            check(lib.ich_metrics_class(h, i, ctypes.byref(c)))
            half = _ratios(c.at_half)
            for key in ("accuracy", "precision", "recall", "specificity", "f1"):
                r[key].append(half[key])
            r["confusion"].append(half["confusion"])
            r["auc"].append(_value(c.auc, c.defined, _AUC))
            r["average_precision"].append(_value(c.average_precision, c.defined, _AP))
            r["auc_ci"].append((float(c.auc_low), float(c.auc_high))
                               if c.defined & _AUC_CI else None)
            r["youden_threshold"].append(_value(c.youden_threshold, c.defined, _YOUDEN))
            r["youden"].append(_ratios(c.at_youden) if c.defined & _YOUDEN else None)
            r["roc"].append(self._roc(h, i, c.roc_points))
            r["positives"].append(int(c.positives))
            r["negatives"].append(int(c.negatives))
        s = _Summary()
        s.size = ctypes.sizeof(s)
        check(lib.ich_metrics_summary(h, ctypes.byref(s)))
        r["accuracy_overall"] = _value(s.accuracy_overall, s.defined, _ACCURACY)
        r["bce"] = _value(s.bce, s.defined, _BCE)
        r["rsna_log_loss"] = _value(s.rsna_log_loss, s.defined, _RSNA)
        r["macro_auc"] = _value(s.macro_auc, s.defined, _AUC)
        r["macro_average_precision"] = _value(s.macro_average_precision, s.defined, _AP)
        r["macro_f1"] = _value(s.macro_f1, s.defined, _F1)
        r["samples"] = int(s.samples)
        r["classes"] = names
        return r

    @staticmethod
    def _roc(h, index, points):
        fpr, tpr, thr = (np.empty(points, dtype=np.float64) for _ in range(3))
        check(lib.ich_metrics_roc(h, index, fpr.ctypes.data_as(_d_p), tpr.ctypes.data_as(_d_p),
                                  thr.ctypes.data_as(_d_p), points))
        return fpr, tpr, thr


def _ratios(at):
    """The ratios and confusion matrix of one ``ich_metrics_at``."""
    out = {key: _value(getattr(at, key), at.defined, bit)
           for key, bit in (("accuracy", _ACCURACY), ("precision", _PRECISION),
                            ("recall", _RECALL), ("specificity", _SPECIFICITY), ("f1", _F1))}
    out["threshold"] = float(at.threshold)
    out["confusion"] = [[int(at.tn), int(at.fp)], [int(at.fn), int(at.tp)]]
    return out
