"""Training pieces (``include/ich/optim.h``): the BCE-with-logits loss,
balanced class weights, Adam / AdamW / SGD with PyTorch 1.13's exact update
rules, gradient clipping, learning-rate schedules and early stopping.

A training step written out::

    model = ich.Model("input 1x64x64, conv 8 3, relu, gap, flatten, linear 6")
    opt = ich.Optimizer(model, "adam", lr=1e-3)
    model.train()
    logits = model.forward(x)                       # (N, 6)
    loss, grad = ich.bce_with_logits(logits, y, pos_weight=pw)
    model.zero_grad()
    model.backward(grad)
    ich.clip_grad_norm(model, 5.0)
    opt.step()

The optimizer, schedule and early-stopping objects expose their state as
text (``.config``) that ``restore_config()`` reads back exactly.
"""

import ctypes
import math
import numbers

import numpy as np

from . import _errors
from ._errors import check
from ._lib import c_float_p, lib, _declare
from ._util import OwnedHandle, INT32_MAX, c_string
from .model import Model, _TensorView

__all__ = ["bce_with_logits", "class_weights_balanced", "Optimizer", "clip_grad_norm",
           "Schedule", "EarlyStopping", "checkpoint_save", "checkpoint_load"]

_c_status = ctypes.c_int
_c_handle = ctypes.c_void_p
_c_handle_p = ctypes.POINTER(ctypes.c_void_p)


class _OptimizerOptions(ctypes.Structure):
    """Mirror of ``struct ich_optimizer_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("kind", ctypes.c_int32),
        ("lr", ctypes.c_double),
        ("beta1", ctypes.c_double),
        ("beta2", ctypes.c_double),
        ("eps", ctypes.c_double),
        ("weight_decay", ctypes.c_double),
        ("momentum", ctypes.c_double),
        ("dampening", ctypes.c_double),
        ("nesterov", ctypes.c_int32),
    ]


class _ScheduleOptions(ctypes.Structure):
    """Mirror of ``struct ich_schedule_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("kind", ctypes.c_int32),
        ("factor", ctypes.c_double),
        ("patience", ctypes.c_int32),
        ("threshold", ctypes.c_double),
        ("min_lr", ctypes.c_double),
        ("maximize", ctypes.c_int32),
        ("step_size", ctypes.c_int32),
        ("gamma", ctypes.c_double),
        ("t_max", ctypes.c_int32),
    ]


_declare("ich_loss_bce_with_logits", _c_status, c_float_p, c_float_p, ctypes.c_int32,
         ctypes.c_int32, c_float_p, c_float_p, c_float_p, c_float_p)
_declare("ich_class_weights_balanced", _c_status, _c_handle, c_float_p, ctypes.c_int32)
_declare("ich_optimizer_options_init", None, ctypes.POINTER(_OptimizerOptions), ctypes.c_int)
_declare("ich_optimizer_create", _c_status, _c_handle, ctypes.POINTER(_OptimizerOptions),
         _c_handle_p)
_declare("ich_optimizer_free", None, _c_handle)
_declare("ich_optimizer_step", _c_status, _c_handle)
_declare("ich_optimizer_lr", ctypes.c_double, _c_handle)
_declare("ich_optimizer_set_lr", _c_status, _c_handle, ctypes.c_double)
_declare("ich_optimizer_steps", ctypes.c_int64, _c_handle)
_declare("ich_optimizer_state_count", ctypes.c_int32, _c_handle)
_declare("ich_optimizer_state", _c_status, _c_handle, ctypes.c_int32,
         ctypes.POINTER(_TensorView))
_declare("ich_optimizer_config", ctypes.c_char_p, _c_handle)
_declare("ich_optimizer_restore_config", _c_status, _c_handle, ctypes.c_char_p)
_declare("ich_clip_grad_norm", _c_status, _c_handle, ctypes.c_double,
         ctypes.POINTER(ctypes.c_double))
_declare("ich_schedule_options_init", None, ctypes.POINTER(_ScheduleOptions), ctypes.c_int)
_declare("ich_schedule_create", _c_status, _c_handle, ctypes.POINTER(_ScheduleOptions),
         _c_handle_p)
_declare("ich_schedule_free", None, _c_handle)
_declare("ich_schedule_step", _c_status, _c_handle, ctypes.c_double)
_declare("ich_schedule_config", ctypes.c_char_p, _c_handle)
_declare("ich_schedule_restore_config", _c_status, _c_handle, ctypes.c_char_p)
_declare("ich_early_stopping_create", _c_status, ctypes.c_int32, ctypes.c_double, ctypes.c_int,
         _c_handle_p)
_declare("ich_early_stopping_free", None, _c_handle)
_declare("ich_early_stopping_update", _c_status, _c_handle, ctypes.c_double,
         ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
_declare("ich_early_stopping_best", ctypes.c_double, _c_handle, ctypes.POINTER(ctypes.c_int64))
_declare("ich_early_stopping_config", ctypes.c_char_p, _c_handle)
_declare("ich_early_stopping_restore_config", _c_status, _c_handle, ctypes.c_char_p)
_declare("ich_checkpoint_save", _c_status, ctypes.c_char_p, _c_handle, _c_handle,
         ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p), ctypes.c_int32)
_declare("ich_checkpoint_load", _c_status, ctypes.c_char_p, _c_handle, _c_handle)

_KINDS = {"sgd": 0, "adam": 1, "adamw": 2}
_SCHEDULES = {"plateau": 0, "step": 1, "cosine": 2}


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _float_array(value, name, shape=None):
    array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
    if shape is not None and array.shape != shape:
        raise _errors.error(_errors.ERR_SHAPE, "%s has shape %s, expected %s"
                            % (name, array.shape, shape))
    return array


def _pointer(array):
    return array.ctypes.data_as(c_float_p) if array is not None else None


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid("%s must be a number, not %r" % (name, value))
    return float(value)


def _int32(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid("%s must be an integer, not %r" % (name, value))
    if not -INT32_MAX - 1 <= int(value) <= INT32_MAX:
        raise _invalid("%s out of range: %d" % (name, value))
    return int(value)


def _model_handle(model):
    if not isinstance(model, Model):
        raise TypeError("expected an ich.Model, not %s" % type(model).__name__)
    return model._live()


# ---- Loss ------------------------------------------------------------------

def bce_with_logits(logits, targets, pos_weight=None, weight=None):
    """BCE-with-logits averaged over every element, as PyTorch's
    ``BCEWithLogitsLoss(pos_weight=..., weight=...)``.

    Arguments:
        logits, targets: (N, classes) arrays (a 1-D array is one sample).
        pos_weight: None or `classes` positive-class weights.
        weight: None or an (N, classes) array of element weights.

    Returns ``(loss, grad)``: the mean loss (float) and d loss / d logits,
    a float32 array shaped like `logits`.
    """
    x = _float_array(logits, "logits")
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.size == 0:
        raise _errors.error(_errors.ERR_SHAPE, "logits must be (N, classes), got %s"
                            % (np.shape(logits),))
    y = _float_array(targets, "targets").reshape(-1)
    if y.size != x.size:
        raise _errors.error(_errors.ERR_SHAPE, "targets has %d values, logits %d"
                            % (y.size, x.size))
    y = y.reshape(x.shape)
    n, classes = x.shape
    pw = None if pos_weight is None else _float_array(pos_weight, "pos_weight").reshape(-1)
    if pw is not None and pw.size != classes:
        raise _errors.error(_errors.ERR_SHAPE, "pos_weight has %d values, expected %d"
                            % (pw.size, classes))
    w = None if weight is None else _float_array(weight, "weight").reshape(-1)
    if w is not None and w.size != x.size:
        raise _errors.error(_errors.ERR_SHAPE, "weight has %d values, expected %d"
                            % (w.size, x.size))
    loss = ctypes.c_float()
    grad = np.empty_like(x)
    check(lib.ich_loss_bce_with_logits(_pointer(x), _pointer(y), n, classes, _pointer(pw),
                                       _pointer(w), ctypes.byref(loss), _pointer(grad)))
    return float(loss.value), grad.reshape(np.shape(logits))


def class_weights_balanced(labels):
    """"Balanced" positive weights of an :class:`ich.Labels` table:
    negatives / positives per column (1 where a column has no positives or
    no negatives), a float32 array of ``len(labels.columns)`` values."""
    from .labels import Labels
    if not isinstance(labels, Labels):
        raise TypeError("class_weights_balanced: expected an ich.Labels")
    handle = labels._live()
    count = lib.ich_labels_columns(handle)
    out = np.zeros(count, np.float32)
    check(lib.ich_class_weights_balanced(handle, _pointer(out), count))
    return out


def clip_grad_norm(model, max_norm):
    """Scale the gradients of the model's unfrozen parameters so that their
    global L2 norm is at most `max_norm` (``torch.nn.utils.clip_grad_norm_``);
    returns the norm before clipping."""
    total = ctypes.c_double()
    check(lib.ich_clip_grad_norm(_model_handle(model), _real(max_norm, "max_norm"),
                                 ctypes.byref(total)))
    return total.value


# ---- Optimizers ------------------------------------------------------------

class Optimizer(OwnedHandle):
    """Adam, AdamW or SGD over the trainable parameters of `model`.

    Arguments (PyTorch's names and defaults):
        kind: "adam", "adamw" or "sgd".
        lr: 1e-3 for Adam(W), 0.01 for SGD.
        betas, eps: Adam(W): (0.9, 0.999), 1e-8.
        weight_decay: Adam and SGD: 0 (L2 on the gradient); AdamW: 0.01
            (decoupled).
        momentum, dampening, nesterov: SGD: 0, 0, False.

    :meth:`step` updates every unfrozen parameter from its gradient
    (``model.backward`` accumulates them; call ``model.zero_grad()``
    between steps). ``lr`` can be read and set; ``steps`` counts the steps;
    :meth:`state` copies the moment buffers; ``config`` is the settings and
    counters as text for :meth:`restore_config`.
    """

    _free = lib.ich_optimizer_free

    def __init__(self, model, kind="adam", lr=None, betas=None, eps=None, weight_decay=None,
                 momentum=None, dampening=None, nesterov=False):
        if kind not in _KINDS:
            raise _invalid("Optimizer: kind must be one of %s, not %r" % (sorted(_KINDS), kind))
        handle = _model_handle(model)
        options = _OptimizerOptions()
        options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
        lib.ich_optimizer_options_init(ctypes.byref(options), _KINDS[kind])
        if lr is not None:
            options.lr = _real(lr, "lr")
        if betas is not None:
            if len(betas) != 2:
                raise _invalid("betas must be a pair")
            options.beta1 = _real(betas[0], "betas[0]")
            options.beta2 = _real(betas[1], "betas[1]")
        for name, value in (("eps", eps), ("weight_decay", weight_decay),
                            ("momentum", momentum), ("dampening", dampening)):
            if value is not None:
                setattr(options, name, _real(value, name))
        options.nesterov = 1 if nesterov else 0
        out = ctypes.c_void_p()
        check(lib.ich_optimizer_create(handle, ctypes.byref(options), ctypes.byref(out)))
        self._handle = out
        self.model = model  # the C optimizer uses it: keep it alive
        self.kind = kind

    def step(self):
        """Update the unfrozen parameters from their gradients."""
        check(lib.ich_optimizer_step(self._live()))

    @property
    def lr(self):
        """The learning rate (settable)."""
        return lib.ich_optimizer_lr(self._live())

    @lr.setter
    def lr(self, value):
        check(lib.ich_optimizer_set_lr(self._live(), _real(value, "lr")))

    @property
    def steps(self):
        """Steps taken so far."""
        return lib.ich_optimizer_steps(self._live())

    def state(self):
        """The optimizer state: {name: numpy copy}, names
        "optimizer.<param>.exp_avg", ".exp_avg_sq" (Adam), ".momentum_buffer"
        (SGD with momentum) and ".step" (updates of that parameter)."""
        handle = self._live()
        out = {}
        for i in range(lib.ich_optimizer_state_count(handle)):
            view = _TensorView()
            check(lib.ich_optimizer_state(handle, i, ctypes.byref(view)))
            out[view.name.decode()] = Model._array(view, view.data).copy()
        return out

    @property
    def config(self):
        """Settings and step count as one line of text."""
        return lib.ich_optimizer_config(self._live()).decode("ascii")

    def restore_config(self, config):
        """Restore settings and step count from :attr:`config` text (same kind)."""
        check(lib.ich_optimizer_restore_config(self._live(), c_string(config, "config")))

    def __repr__(self):
        if not self._handle:
            return "Optimizer(closed)"
        return "Optimizer(%s, lr=%g, steps=%d)" % (self.kind, self.lr, self.steps)


# ---- Schedules -------------------------------------------------------------

class Schedule(OwnedHandle):
    """A learning-rate schedule driving `optimizer`'s lr, one :meth:`step`
    per epoch (PyTorch 1.13's schedulers, whose lr sequences it equals).

    Kinds and options (PyTorch's defaults):
        "plateau": ReduceLROnPlateau: factor=0.1, patience=10,
            threshold=1e-4 (relative), min_lr=0, mode="min" ("max", or
            maximize=True, for a metric where higher is better); step(metric).
        "step": StepLR: step_size=10, gamma=0.1.
        "cosine": CosineAnnealingLR: t_max=10 (or T_max), min_lr=0 (or
            eta_min).
    """

    _free = lib.ich_schedule_free
    _OPTIONS = {"factor": _real, "patience": _int32, "threshold": _real, "min_lr": _real,
                "step_size": _int32, "gamma": _real, "t_max": _int32}
    _ALIASES = {"T_max": "t_max", "eta_min": "min_lr"}

    def __init__(self, optimizer, kind="plateau", **options):
        if not isinstance(optimizer, Optimizer):
            raise TypeError("Schedule: expected an ich.Optimizer")
        if kind not in _SCHEDULES:
            raise _invalid("Schedule: kind must be one of %s, not %r"
                           % (sorted(_SCHEDULES), kind))
        o = _ScheduleOptions()
        o.size = ctypes.sizeof(o)  # as the C macro does (ICH_SIZED)
        lib.ich_schedule_options_init(ctypes.byref(o), _SCHEDULES[kind])
        for name, value in options.items():
            field = self._ALIASES.get(name, name)
            if field == "mode":
                if value not in ("min", "max"):
                    raise _invalid("mode must be 'min' or 'max', not %r" % (value,))
                o.maximize = 1 if value == "max" else 0
            elif field == "maximize":
                o.maximize = 1 if value else 0
            elif field in self._OPTIONS:
                setattr(o, field, self._OPTIONS[field](value, name))
            else:
                raise TypeError("Schedule: unknown option %r" % name)
        out = ctypes.c_void_p()
        check(lib.ich_schedule_create(optimizer._live(), ctypes.byref(o), ctypes.byref(out)))
        self._handle = out
        self.optimizer = optimizer  # keep it alive
        self.kind = kind

    def step(self, metric=None):
        """End of an epoch: update the learning rate (plateau needs the
        epoch's metric) and return it."""
        if metric is None:
            if self.kind == "plateau":
                raise _invalid("Schedule.step: a plateau schedule needs the metric")
            metric = math.nan
        check(lib.ich_schedule_step(self._live(), _real(metric, "metric")))
        return self.optimizer.lr

    @property
    def config(self):
        """The schedule's settings and state as one line of text."""
        return lib.ich_schedule_config(self._live()).decode("ascii")

    def restore_config(self, config):
        check(lib.ich_schedule_restore_config(self._live(), c_string(config, "config")))


# ---- Early stopping ----------------------------------------------------------

class EarlyStopping(OwnedHandle):
    """Stop after `patience` epochs without an improvement of more than
    `min_delta` in a metric (lower is better unless `maximize`).

    ``improved, stop = early.update(metric)`` per epoch; ``best`` and
    ``best_epoch`` (0-based; -1 before any) say which epoch to restore.
    """

    _free = lib.ich_early_stopping_free

    def __init__(self, patience, min_delta=0.0, maximize=False):
        out = ctypes.c_void_p()
        check(lib.ich_early_stopping_create(_int32(patience, "patience"),
                                            _real(min_delta, "min_delta"),
                                            1 if maximize else 0, ctypes.byref(out)))
        self._handle = out

    def update(self, metric):
        """Record an epoch's metric; returns (improved, stop) as bools."""
        improved = ctypes.c_int()
        stop = ctypes.c_int()
        check(lib.ich_early_stopping_update(self._live(), _real(metric, "metric"),
                                            ctypes.byref(improved), ctypes.byref(stop)))
        return bool(improved.value), bool(stop.value)

    @property
    def best(self):
        """The best metric so far (NaN before any)."""
        return lib.ich_early_stopping_best(self._live(), None)

    @property
    def best_epoch(self):
        """The epoch (0-based) of the best metric, -1 before any."""
        epoch = ctypes.c_int64()
        lib.ich_early_stopping_best(self._live(), ctypes.byref(epoch))
        return epoch.value

    @property
    def config(self):
        return lib.ich_early_stopping_config(self._live()).decode("ascii")

    def restore_config(self, config):
        check(lib.ich_early_stopping_restore_config(self._live(), c_string(config, "config")))


# ---- Checkpoints with training state ----------------------------------------

def checkpoint_save(path, model, optimizer, extra=None):
    """Save `model` and `optimizer`'s state (moment buffers, step counts,
    settings) and the `extra` {key: value} strings as one safetensors file,
    atomically, so that :func:`checkpoint_load` continues the same run."""
    from ._util import fspath_bytes
    extra = dict(extra or {})
    keys = (ctypes.c_char_p * max(len(extra), 1))(
        *[c_string(k, "extra key") for k in extra])
    values = (ctypes.c_char_p * max(len(extra), 1))(
        *[c_string(v, "extra value") for v in extra.values()])
    check(lib.ich_checkpoint_save(fspath_bytes(path), _model_handle(model), optimizer._live(),
                                  keys, values, len(extra)))


def checkpoint_load(path, model, optimizer):
    """Load a checkpoint written by :func:`checkpoint_save` into `model` and
    `optimizer` (same spec and optimizer kind); its extra entries are then
    in ``model.metadata``."""
    from ._util import fspath_bytes
    check(lib.ich_checkpoint_load(fspath_bytes(path), _model_handle(model), optimizer._live()))
