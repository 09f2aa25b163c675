"""The training driver (``include/ich/train.h``): epochs over an
``ich.Dataset`` with validation, a learning-rate schedule, early stopping,
warm-up, checkpoints, resuming and a progress callback.

::

    model = ich.Model("input 3x64x64, conv 8 3 pad 1, relu, gap, linear 6")
    opt = ich.Optimizer(model, "adam", lr=1e-3)
    history = ich.train(model, opt, train_ds, val_ds, epochs=10, balanced=True,
                        patience=3, checkpoint_dir="runs/a",
                        progress=lambda p: print(p["epoch"], p["loss"]))
    history[-1]["val_loss"]

The history is a list of dicts, one per epoch: epoch (0-based),
train_loss, train_accuracy, val_loss, val_accuracy (None without
validation), lr, seconds, and in a cascade's staged run stage (0 "any",
1 subtypes). ``ich.evaluate(model, dataset)`` gives the loss
and element-wise accuracy on a dataset.

A cascade model (``ich.Model.preset("cascade")``) trains its stages in
turn by default: stage one the "any" branch on every image, stage two the
subtype branch on the any-positive images, each with `warmup_epochs` of
its head alone, then fine-tuning at ``finetune_lr_factor`` x the lr
(``include/ich/train.h``, "Cascade models"); ``staged=False`` trains both
branches jointly as before.
"""

import ctypes
import math
import os
import tempfile
import numbers

import numpy as np

from . import _errors
from ._cancel import Interruptible
from ._errors import check
from ._lib import c_float_p, lib, _declare
from ._util import INT32_MAX, c_string, fspath_bytes
from .dataset import Dataset
from .model import Model
from .optim import Optimizer, Schedule, _ScheduleOptions, _SCHEDULES

__all__ = ["train", "evaluate", "History"]

_P = ctypes.c_void_p


class _EpochStats(ctypes.Structure):
    """Mirror of ``struct ich_epoch_stats``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("epoch", ctypes.c_int32),
        ("train_loss", ctypes.c_double),
        ("train_accuracy", ctypes.c_double),
        ("val_loss", ctypes.c_double),
        ("val_accuracy", ctypes.c_double),
        ("lr", ctypes.c_double),
        ("seconds", ctypes.c_double),
        ("stage", ctypes.c_int32),
    ]


class _Progress(ctypes.Structure):
    """Mirror of ``struct ich_train_progress``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("phase", ctypes.c_int32),
        ("epoch", ctypes.c_int32),
        ("epochs", ctypes.c_int32),
        ("batch", ctypes.c_int64),
        ("batches", ctypes.c_int64),
        ("loss", ctypes.c_double),
        ("accuracy", ctypes.c_double),
        ("elapsed", ctypes.c_double),
        ("stats", ctypes.POINTER(_EpochStats)),
        ("stage", ctypes.c_int32),
        ("stages", ctypes.c_int32),
    ]


_ProgressFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Progress))


class _Options(ctypes.Structure):
    """Mirror of ``struct ich_train_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("epochs", ctypes.c_int32),
        ("pos_weight", c_float_p),
        ("balanced", ctypes.c_int32),
        ("clip_norm", ctypes.c_double),
        ("schedule", ctypes.POINTER(_ScheduleOptions)),
        ("constant_lr", ctypes.c_int32),
        ("patience", ctypes.c_int32),
        ("min_delta", ctypes.c_double),
        ("restore_best", ctypes.c_int32),
        ("warmup_epochs", ctypes.c_int32),
        ("warmup_trainable", ctypes.c_char_p),
        ("cascade_mask", ctypes.c_int32),
        ("checkpoint_dir", ctypes.c_char_p),
        ("resume", ctypes.c_char_p),
        ("progress", _ProgressFn),
        ("progress_user", ctypes.c_void_p),
        ("staged", ctypes.c_int32),
        ("stage_epochs", ctypes.c_int32 * 2),
        ("finetune_lr_factor", ctypes.c_double),
    ]


_declare("ich_train_options_init", None, ctypes.POINTER(_Options))
_declare("ich_train", ctypes.c_int, _P, _P, _P, _P, ctypes.POINTER(_Options),
         ctypes.POINTER(_P))
_declare("ich_evaluate", ctypes.c_int, _P, _P, c_float_p, ctypes.c_int32,
         ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double))
_declare("ich_evaluate_with_progress", ctypes.c_int, _P, _P, c_float_p, ctypes.c_int32,
         _ProgressFn, ctypes.c_void_p, ctypes.POINTER(ctypes.c_double),
         ctypes.POINTER(ctypes.c_double))
_declare("ich_history_free", None, _P)
_declare("ich_history_length", ctypes.c_int32, _P)
_declare("ich_history_get", ctypes.c_int, _P, ctypes.c_int32, ctypes.POINTER(_EpochStats))
_declare("ich_history_best_epoch", ctypes.c_int32, _P)
_declare("ich_history_stopped_early", ctypes.c_int, _P)
_declare("ich_history_write_csv", ctypes.c_int, _P, ctypes.c_char_p)


class History(list):
    """The per-epoch rows of a run (dicts, see the module doc), plus
    ``best_epoch`` (the epoch whose weights the model ends with under early
    stopping, -1 if none), ``stopped_early`` and ``csv`` (the history as
    the CSV text ich-train writes as history.csv)."""

    best_epoch = -1
    stopped_early = False
    csv = ""

_PHASES = {0: "train", 1: "validate", 2: "epoch"}
_STATS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _int(value, name, low=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid("%s must be an integer, not %r" % (name, value))
    if not low <= int(value) <= INT32_MAX:
        raise _invalid("%s must be in %d..%d, got %d" % (name, low, INT32_MAX, value))
    return int(value)


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid("%s must be a number, not %r" % (name, value))
    return float(value)


def _stats_dict(stats):
    # Without validation the C side has NaN: None says "not measured".
    row = {name: (None if isinstance(v, float) and math.isnan(v) else v)
           for name, v in ((name, getattr(stats, name)) for name in _STATS)}
    if stats.stage >= 0:  # a staged run's rows only: others keep their keys
        row["stage"] = stats.stage
    return row


def _schedule_options(schedule):
    """None: the default plateau; a dict {"kind": ..., option: value}."""
    if not isinstance(schedule, dict):
        raise TypeError("schedule must be None, False or a dict like "
                        "{'kind': 'step', 'step_size': 5}")
    options = dict(schedule)
    kind = options.pop("kind", "plateau")
    if kind not in _SCHEDULES:
        raise _invalid("schedule kind must be one of %s, not %r" % (sorted(_SCHEDULES), kind))
    o = _ScheduleOptions()
    o.size = ctypes.sizeof(o)  # as the C macro does (ICH_SIZED)
    lib.ich_schedule_options_init(ctypes.byref(o), _SCHEDULES[kind])
    for name, value in options.items():
        field = Schedule._ALIASES.get(name, name)
        if field == "maximize":
            o.maximize = 1 if value else 0
        elif field in Schedule._OPTIONS:
            setattr(o, field, Schedule._OPTIONS[field](value, name))
        else:
            raise TypeError("schedule: unknown option %r" % name)
    return o


def _pos_weight(model, pos_weight):
    if pos_weight is None:
        return None
    array = np.ascontiguousarray(np.asarray(pos_weight, dtype=np.float32))
    if array.shape != (model.outputs,):
        raise _errors.error(_errors.ERR_SHAPE, "pos_weight has shape %s, expected (%d,)"
                            % (array.shape, model.outputs))
    return array


def _mask_option(cascade_mask):
    return -1 if cascade_mask is None else (1 if cascade_mask else 0)


def _check_types(model, optimizer, datasets):
    if not isinstance(model, Model):
        raise TypeError("expected an ich.Model, not %s" % type(model).__name__)
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError("expected an ich.Optimizer, not %s" % type(optimizer).__name__)
    for d in datasets:
        if d is not None and not isinstance(d, Dataset):
            raise TypeError("expected an ich.Dataset, not %s" % type(d).__name__)


def _report(user, pointer):
    """An ich_train_progress as the argument tuple of a user's callback."""
    p = pointer.contents
    return ({"phase": _PHASES.get(p.phase, p.phase), "epoch": p.epoch, "epochs": p.epochs,
             "batch": p.batch, "batches": p.batches, "loss": p.loss,
             "accuracy": p.accuracy, "elapsed": p.elapsed,
             "stats": _stats_dict(p.stats.contents) if p.stats else None,
             "stage": p.stage if p.stages else None, "stages": p.stages},)


def train(model, optimizer, train_dataset, val_dataset=None, epochs=10, pos_weight=None,
          balanced=False, clip_norm=0.0, schedule=None, patience=0, min_delta=0.0,
          restore_best=True, warmup_epochs=0, warmup_trainable=None, cascade_mask=None,
          checkpoint_dir=None, resume=None, progress=None, staged=None, stage_epochs=None,
          finetune_lr_factor=0.1):
    """Train `model` with `optimizer` on `train_dataset`, validating on
    `val_dataset` after every epoch (see ``include/ich/train.h``).

    epochs: total epochs of the run (a resumed run counts those already
        done). pos_weight: per-label positive weights, or balanced=True for
        negatives/positives from the training labels. clip_norm: > 0 clips
        the gradient norm. schedule: None for ReduceLROnPlateau (factor 0.1,
        patience 3), False for a constant lr, or a dict such as
        ``{"kind": "cosine", "t_max": 20}`` (options as ich.Schedule's).
        patience: early stopping (0: off); with restore_best the model ends
        with the best epoch's weights. warmup_epochs: first epochs in which
        only the parameters named with the prefix `warmup_trainable`
        (default: the last layer's; a cascade's: each stage's last layer)
        learn. cascade_mask: None masks the subtype loss by the "any" label
        for cascade models trained jointly, True/False force it.
        staged: None trains a cascade model's stages in turn and any other
        model as before, False trains a cascade jointly (both branches each
        step), True requires a cascade. stage_epochs: None for `epochs` per
        stage, or (stage one, stage two) epochs (0: `epochs`, -1: skip the
        stage). finetune_lr_factor: after a stage's warm-up its lr is this
        times the starting lr (staged runs). checkpoint_dir: best.safetensors, last.safetensors and
        history.csv go there. resume: a checkpoint to continue from.
        progress: called as progress(report) after every batch and epoch
        with a dict (phase "train", "validate" or "epoch", epoch, epochs,
        batch, batches, loss, accuracy, elapsed, stats: the epoch's row at
        phase "epoch"; stage 0/1 and stages 2 in a staged run, else None
        and 0); a true return value stops training
        (:class:`ich.CancelledError`); an exception it raises stops
        training and is raised again here. Ctrl-C stops training after the
        current batch and raises KeyboardInterrupt, with or without
        `progress` (the checkpoints of finished epochs stay).

    Returns the history: a list of dicts, one per epoch.
    """
    _check_types(model, optimizer, (train_dataset, val_dataset))
    if optimizer is None or train_dataset is None:
        raise TypeError("train: optimizer and train_dataset are required")
    o = _Options()
    o.size = ctypes.sizeof(o)  # as the C macro does (ICH_SIZED)
    lib.ich_train_options_init(ctypes.byref(o))
    o.epochs = _int(epochs, "epochs")
    weights = _pos_weight(model, pos_weight)
    if weights is not None:
        o.pos_weight = weights.ctypes.data_as(c_float_p)
    o.balanced = 1 if balanced else 0
    o.clip_norm = _real(clip_norm, "clip_norm")
    schedule_options = None
    if schedule is False:
        o.constant_lr = 1
    elif schedule is not None:
        schedule_options = _schedule_options(schedule)
        o.schedule = ctypes.pointer(schedule_options)
    o.patience = _int(patience, "patience")
    o.min_delta = _real(min_delta, "min_delta")
    o.restore_best = 1 if restore_best else 0
    o.warmup_epochs = _int(warmup_epochs, "warmup_epochs")
    o.warmup_trainable = c_string(warmup_trainable, "warmup_trainable")
    o.cascade_mask = _mask_option(cascade_mask)
    o.staged = -1 if staged is None else (1 if staged else 0)
    if stage_epochs is not None:
        if isinstance(stage_epochs, (str, bytes)) or len(stage_epochs) != 2:
            raise _invalid("stage_epochs must be None or a pair (stage one, stage two), not %r"
                           % (stage_epochs,))
        o.stage_epochs[0] = _int(stage_epochs[0], "stage_epochs[0]", -1)
        o.stage_epochs[1] = _int(stage_epochs[1], "stage_epochs[1]", -1)
    o.finetune_lr_factor = _real(finetune_lr_factor, "finetune_lr_factor")
    o.checkpoint_dir = fspath_bytes(checkpoint_dir) if checkpoint_dir is not None else None
    o.resume = fspath_bytes(resume) if resume is not None else None

    handle = ctypes.c_void_p()
    # Always a callback of ours, so that Ctrl-C stops the C loop (ich._cancel).
    with Interruptible(progress) as guard:
        callback = _ProgressFn(guard.wrap(_report))
        o.progress = callback
        status = lib.ich_train(model._live(), optimizer._live(), train_dataset._live(),
                               val_dataset._live() if val_dataset is not None else None,
                               ctypes.byref(o), ctypes.byref(handle))
    guard.check(status)
    try:
        rows = History()
        for i in range(lib.ich_history_length(handle)):
            s = _EpochStats()
            s.size = ctypes.sizeof(s)
            check(lib.ich_history_get(handle, i, ctypes.byref(s)))
            rows.append(_stats_dict(s))
        rows.best_epoch = int(lib.ich_history_best_epoch(handle))
        rows.stopped_early = bool(lib.ich_history_stopped_early(handle))
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "history.csv")
            check(lib.ich_history_write_csv(handle, path.encode()))
            with open(path) as f:
                rows.csv = f.read()
        return rows
    finally:
        lib.ich_history_free(handle)


def evaluate(model, dataset, pos_weight=None, cascade_mask=None, progress=None):
    """Mean BCE-with-logits loss and element-wise accuracy (p > 0.5 predicts 1)
    of `model` over every batch of `dataset`, in evaluation mode, as
    ich.train's validation computes them. Returns (loss, accuracy).

    progress: called after every batch with a dict as ich.train's (phase
    "validate", epoch 0 of 1); a true return value stops the pass
    (:class:`ich.CancelledError`). Ctrl-C stops it and raises
    KeyboardInterrupt."""
    _check_types(model, None, (dataset,))
    weights = _pos_weight(model, pos_weight)
    loss, accuracy = ctypes.c_double(), ctypes.c_double()
    # Always a callback of ours, so that Ctrl-C stops the pass (ich._cancel).
    with Interruptible(progress) as guard:
        callback = _ProgressFn(guard.wrap(_report))
        status = lib.ich_evaluate_with_progress(
            model._live(), dataset._live(),
            weights.ctypes.data_as(c_float_p) if weights is not None else None,
            _mask_option(cascade_mask), callback, None, ctypes.byref(loss),
            ctypes.byref(accuracy))
    guard.check(status)
    return loss.value, accuracy.value
