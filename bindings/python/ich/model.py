"""The CNN: build from a spec or preset, forward/backward, weights as numpy.

``ich.Model(spec)`` builds a network from a text spec (grammar in
include/ich/model.h and libich/nn/spec.h), ``ich.Model.preset(name)`` one of
"tutorial", "ichnet", "cascade" or torchvision's "resnet18", "resnet50",
"efficientnet_v2_s", "efficientnet_v2_m", "convnext_tiny", "convnext_small"
(with torchvision's state_dict names); a cascade's stages (each its own
backbone) are chosen with ``Model.preset("cascade", any=..., subtype=...)``
and trained one at a time with :meth:`Model.set_active_stage`;
``ich.Model.load(path)`` reads a checkpoint
written by :meth:`Model.save`. Inputs are float32 NCHW arrays, outputs
(N, outputs) logits. Parameter and buffer names, shapes and layouts equal
PyTorch's ``state_dict`` for the same network.
"""

import collections.abc
import ctypes

import numpy as np

from . import _errors
from ._cancel import Interruptible
from ._errors import check
from ._lib import c_float_p, c_int32_p, lib, _declare
from ._util import OwnedHandle, c_string, fspath_bytes

__all__ = ["set_threads", "Model", "ModelBuilder", "MODEL_LIMITS", "PretrainedReport",
           "CascadeStage"]

#: The limits of a model spec (ICH_MODEL_MAX_* in include/ich/model.h): a
#: spec beyond one (from text, a builder or a checkpoint) raises
#: InvalidArgumentError, or FormatError naming the file for a checkpoint.
MODEL_LIMITS = {
    "input_channels": 4096,        # "input CxHxW": C
    "input_side": 16384,           # H and W
    "channels": 65536,             # conv/linear outputs, concat channels
    "kernel": 1024,                # kernel, stride, padding, dilation
    "layers": 4096,                # items in a spec
    "depth": 16,                   # nesting of blocks
    "param_bytes": 1 << 30,        # parameters and buffers
    "activation_bytes": 1 << 30,   # activations of one image
}

_c_model = ctypes.c_void_p
_c_model_p = ctypes.POINTER(ctypes.c_void_p)
_c_status = ctypes.c_int


class _TensorView(ctypes.Structure):
    """Mirror of ``struct ich_tensor_view`` (include/ich/model.h)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("name", ctypes.c_char_p),
        ("type", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("dims", ctypes.c_int64 * 4),
        ("count", ctypes.c_int64),
        ("data", ctypes.c_void_p),
        ("grad", c_float_p),
        ("trainable", ctypes.c_int32),
        ("frozen", ctypes.c_int32),
    ]

    def __init__(self):
        super().__init__()
        self.size = ctypes.sizeof(self)


_declare("ich_model_create", _c_status, ctypes.c_char_p, _c_model_p)
_declare("ich_model_create_preset", _c_status, ctypes.c_char_p, _c_model_p)
_declare("ich_model_free", None, _c_model)
_declare("ich_model_spec", ctypes.c_char_p, _c_model)
_declare("ich_model_input_shape", _c_status, _c_model, c_int32_p, c_int32_p, c_int32_p)
_declare("ich_model_outputs", ctypes.c_int32, _c_model)
_declare("ich_model_init_weights", _c_status, _c_model, ctypes.c_uint64)
_declare("ich_model_set_training", _c_status, _c_model, ctypes.c_int)
_declare("ich_model_forward", _c_status, _c_model, c_float_p, ctypes.c_int32, c_float_p,
         ctypes.c_size_t)
_declare("ich_model_backward", _c_status, _c_model, c_float_p, ctypes.c_size_t)
_declare("ich_model_zero_grad", _c_status, _c_model)
_declare("ich_model_predict", _c_status, _c_model, c_float_p, ctypes.c_int32, ctypes.c_float,
         c_float_p, ctypes.c_size_t)
_declare("ich_model_tensor_count", ctypes.c_int32, _c_model)
_declare("ich_model_tensor", _c_status, _c_model, ctypes.c_int32, ctypes.POINTER(_TensorView))
_declare("ich_model_find_tensor", ctypes.c_int32, _c_model, ctypes.c_char_p)
_declare("ich_model_tensor_changed", None, _c_model, ctypes.c_int32)
_declare("ich_model_freeze", _c_status, _c_model, ctypes.c_char_p, ctypes.c_int, c_int32_p)
_declare("ich_model_cascade_stages", ctypes.c_int32, _c_model)
_declare("ich_model_cascade_stage", _c_status, _c_model, ctypes.c_int32,
         ctypes.POINTER(ctypes.c_char_p), c_int32_p, c_int32_p)
_declare("ich_model_set_active_stage", _c_status, _c_model, ctypes.c_int32)
_declare("ich_model_active_stage", ctypes.c_int32, _c_model)
_declare("ich_model_set_metadata", _c_status, _c_model, ctypes.c_char_p, ctypes.c_char_p)
_declare("ich_model_metadata", ctypes.c_char_p, _c_model, ctypes.c_char_p)
_declare("ich_model_metadata_count", ctypes.c_int32, _c_model)
_declare("ich_model_metadata_key", ctypes.c_char_p, _c_model, ctypes.c_int32)
_declare("ich_model_input_window", _c_status, _c_model, _c_model_p)
_declare("ich_model_set_input_window", _c_status, _c_model, ctypes.c_void_p)
_declare("ich_model_set_labels", _c_status, _c_model, ctypes.POINTER(ctypes.c_char_p),
         ctypes.c_int32)


_declare("ich_model_save", _c_status, _c_model, ctypes.c_char_p)
_declare("ich_model_load", _c_status, ctypes.c_char_p, _c_model_p)
_declare("ich_model_load_weights", _c_status, _c_model, ctypes.c_char_p, ctypes.c_int)
_declare("ich_set_threads", None, ctypes.c_int32)

#: ich_pretrained_fn (include/ich/model.h): user, kind, name, detail.
_PRETRAINED_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_char_p,
                                  ctypes.c_char_p)


class _PretrainedReport(ctypes.Structure):
    """Mirror of ``struct ich_pretrained_report`` (include/ich/model.h)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("loaded", ctypes.c_int32),
        ("skipped", ctypes.c_int32),
        ("fresh", ctypes.c_int32),
        ("summed", ctypes.c_int32),
        ("tensor_fn", _PRETRAINED_FN),
        ("tensor_user", ctypes.c_void_p),
    ]

    def __init__(self):
        super().__init__()
        self.size = ctypes.sizeof(self)


_declare("ich_model_load_pretrained", _c_status, _c_model, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(_PretrainedReport))


class PretrainedReport:
    """What :meth:`Model.load_pretrained` did with each tensor.

    ``loaded``: the model tensors filled from the file (prefix included);
    ``summed``: those of them that were 3-channel stem weights summed for a
    1-channel model; ``skipped``: {file tensor name: why} for the file
    tensors not used (not in the model, or another shape: an ImageNet
    head); ``fresh``: {model tensor name: why} for the model tensors under
    the prefix that kept their values (a new head)."""

    def __init__(self, path, prefix):
        self.path = str(path)
        self.prefix = prefix
        self.loaded = []
        self.summed = []
        self.skipped = {}
        self.fresh = {}

    def __str__(self):
        def names(items):
            return " (%s)" % ", ".join(items) if items else ""
        return "pretrained %s%s: %d tensors loaded, %d skipped%s, %d new%s" % (
            self.path, " into " + self.prefix if self.prefix else "", len(self.loaded),
            len(self.skipped), names(self.skipped), len(self.fresh), names(self.fresh))

    def __repr__(self):
        return "<PretrainedReport %d loaded, %d skipped, %d fresh>" % (
            len(self.loaded), len(self.skipped), len(self.fresh))
_declare("ich_model_builder_create", _c_status, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
         _c_model_p)
_declare("ich_model_builder_free", None, _c_model)
_declare("ich_model_builder_conv", _c_status, _c_model, ctypes.c_char_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)
_declare("ich_model_builder_linear", _c_status, _c_model, ctypes.c_char_p, ctypes.c_int32)
_declare("ich_model_builder_pool", _c_status, _c_model, ctypes.c_char_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32)
_declare("ich_model_builder_dropout", _c_status, _c_model, ctypes.c_double)
_declare("ich_model_builder_layer", _c_status, _c_model, ctypes.c_char_p, ctypes.c_char_p)
_declare("ich_model_builder_item", _c_status, _c_model, ctypes.c_char_p)
_declare("ich_model_builder_begin", _c_status, _c_model, ctypes.c_char_p)
_declare("ich_model_builder_next", _c_status, _c_model)
_declare("ich_model_builder_end", _c_status, _c_model)
_declare("ich_model_backend", ctypes.c_char_p, _c_model)
_declare("ich_model_builder_spec", ctypes.c_char_p, _c_model)
_declare("ich_model_builder_build", _c_status, _c_model, _c_model_p)


def set_threads(threads=0):
    """Threads the compute kernels use, for every model in the process
    (0: one per CPU, the default)."""
    lib.ich_set_threads(int(threads))

_DTYPES = {0: np.float32, 1: np.int64}

#: One stage of a cascade model (:meth:`Model.cascade_stage`): the
#: parameter-name prefix of its branch ("any." or "subtype."), and its
#: columns in the logits, ``logits[:, first_output:first_output + outputs]``.
CascadeStage = collections.namedtuple("CascadeStage", ["prefix", "first_output", "outputs"])


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


class Metadata(collections.abc.MutableMapping):
    """The model's metadata entries (str -> str), kept in checkpoints."""

    def __init__(self, model):
        self._model = model

    def __getitem__(self, key):
        value = lib.ich_model_metadata(self._model._live(), c_string(key, "key"))
        if value is None:
            raise KeyError(key)
        return value.decode("utf-8")

    def __setitem__(self, key, value):
        if not isinstance(value, str):
            raise TypeError("metadata values are str")
        check(lib.ich_model_set_metadata(self._model._live(), c_string(key, "key"),
                                         c_string(value, "value")))

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        check(lib.ich_model_set_metadata(self._model._live(), c_string(key, "key"), None))

    def __contains__(self, key):
        return isinstance(key, str) and lib.ich_model_metadata(
            self._model._live(), c_string(key, "key")) is not None

    def _keys(self):
        handle = self._model._live()
        count = lib.ich_model_metadata_count(handle)
        return [lib.ich_model_metadata_key(handle, i).decode("utf-8") for i in range(count)]

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return lib.ich_model_metadata_count(self._model._live())

    def __repr__(self):
        return "Metadata(%r)" % dict(self.items())


class Model(OwnedHandle):
    """A CNN built from a spec (see the module documentation).

    Example::

        model = ich.Model.preset("tutorial")
        logits = model.forward(np.zeros((2, 1, 512, 512), np.float32))  # (2, 6)
    """

    _free = lib.ich_model_free

    def __init__(self, spec=None, _handle=None):
        if _handle is None:
            if not isinstance(spec, str):
                raise TypeError("Model(spec): spec must be a str")
            handle = ctypes.c_void_p()
            check(lib.ich_model_create(c_string(spec, "spec"), ctypes.byref(handle)))
            _handle = handle
        self._handle = _handle
        self.metadata = Metadata(self)

    @classmethod
    def preset(cls, name, channels=None, size=None, outputs=None, any=None, subtype=None):
        """A preset network (see ich_model_create_preset() in ich/model.h):
        "tutorial", "ichnet", "cascade", or one with torchvision's structure
        and state_dict names: "resnet18", "resnet50", "efficientnet_v2_s",
        "efficientnet_v2_m", "convnext_tiny", "convnext_small".

        `channels` (default 3) and `size` (an int for a square input or
        (rows, columns); default 224, 256 for the cascade) set the input of
        the torchvision-structured presets and the cascade; `outputs` the
        number of logits (default 6; not for the cascade).

        `any` and `subtype` (cascade only) name the preset each stage's
        backbone is (default "efficientnet_v2_m" and "convnext_tiny"; any
        preset that takes outputs, or "small", the compact stage of
        libich's first cascade): its tensors get the stage preset's names
        under "any." or "subtype."."""
        text = str(name)
        cascade = [w.lower() for w in text.split()[:1]] == ["cascade"]
        if any is not None:
            text += " any %s" % any
        if subtype is not None:
            text += " subtype %s" % subtype
        if channels is not None or size is not None:
            side = 256 if cascade else 224
            rows, columns = (size, size) if isinstance(size, int) else (size or (side, side))
            text += " input %dx%dx%d" % (3 if channels is None else channels, rows, columns)
        if outputs is not None:
            text += " outputs %d" % outputs
        handle = ctypes.c_void_p()
        check(lib.ich_model_create_preset(c_string(text, "name"), ctypes.byref(handle)))
        return cls(_handle=handle)

    @classmethod
    def load(cls, path):
        """A model rebuilt from a checkpoint file (its spec, tensors and
        metadata)."""
        handle = ctypes.c_void_p()
        check(lib.ich_model_load(fspath_bytes(path), ctypes.byref(handle)))
        return cls(_handle=handle)

    def save(self, path):
        """Write the weights, buffers and metadata as a safetensors file."""
        check(lib.ich_model_save(self._live(), fspath_bytes(path)))

    def load_weights(self, path, strict=True):
        """Read the tensors of a safetensors file (e.g. written by PyTorch)
        into this model; names and shapes must match, and with `strict`
        the file may hold no other tensors."""
        check(lib.ich_model_load_weights(self._live(), fspath_bytes(path), 1 if strict else 0))

    def load_pretrained(self, path, prefix=""):
        """Load the tensors of a safetensors file (e.g. an ImageNet backbone
        converted by :func:`ich.pretrained.convert_pytorch_checkpoint`) that
        fit this model: a file tensor whose name, after `prefix` ("any."
        for one stage of a cascade), and shape match a model tensor is
        loaded; others are skipped (an ImageNet head); model tensors under
        the prefix that nothing filled keep their values (a fresh head).
        Returns a :class:`PretrainedReport`. Raises ShapeError when nothing
        fits at all (a file for another network); all or nothing."""
        report = PretrainedReport(path, prefix)
        kinds = (report.loaded, report.skipped, report.fresh)

        def on_tensor(user, kind, name, detail):
            name = name.decode("utf-8", "replace")
            detail = detail.decode("utf-8", "replace")
            if kind == 0:
                report.loaded.append(name)
                if detail.startswith("summed"):
                    report.summed.append(name)
            elif kind in (1, 2):
                kinds[kind][name] = detail

        c_report = _PretrainedReport()
        c_report.tensor_fn = _PRETRAINED_FN(on_tensor)  # alive for the call
        check(lib.ich_model_load_pretrained(self._live(), fspath_bytes(path),
                                            c_string(prefix or "", "prefix"),
                                            ctypes.byref(c_report)))
        return report

    # ---- description ----------------------------------------------------
    @property
    def spec(self):
        """The canonical spec text."""
        return lib.ich_model_spec(self._live()).decode("utf-8")

    @property
    def input_shape(self):
        """(channels, rows, columns)."""
        c, h, w = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
        check(lib.ich_model_input_shape(self._live(), ctypes.byref(c), ctypes.byref(h),
                                        ctypes.byref(w)))
        return (c.value, h.value, w.value)

    @property
    def backend(self):
        """Where the model runs: ``"cpu"`` or ``"cuda"`` (chosen when it was
        created or loaded; see :func:`ich.use_backend`)."""
        return lib.ich_model_backend(self._live()).decode("ascii")

    @property
    def outputs(self):
        """Number of logits per sample."""
        return int(lib.ich_model_outputs(self._live()))

    @property
    def labels(self):
        """The names of the outputs, in order: the "ich.labels" metadata,
        or the six RSNA labels (:func:`ich.label_names`) for a 6-output
        model without it. Raises NotFoundError for a model with another
        output count and no names, FormatError for a bad "ich.labels"."""
        from .labels import Labels
        handle = ctypes.c_void_p()
        check(lib.ich_labels_of_model(self._live(), ctypes.byref(handle)))
        with Labels._from_handle(handle) as table:
            return table.columns

    def input_window(self):
        """The input recipe stored in the metadata ("ich.recipe", or the
        older "ich.windows", "ich.size", "ich.mean", "ich.std") as an
        :class:`ich.Window` whose float32 output fits this model's input.
        Raises ``NotFoundError`` when the model carries no recipe (never a
        guessed default)."""
        from .window import Window
        handle = ctypes.c_void_p()
        check(lib.ich_model_input_window(self._live(), ctypes.byref(handle)))
        return Window._adopt(handle)

    def set_input_window(self, window):
        """Store `window` (an :class:`ich.Window` or a recipe's text) as the
        model's input recipe (metadata "ich.recipe"), so its checkpoints say
        how to feed it. ``ich.train()`` does this from the training dataset;
        call it when training with the step API. Raises ``ShapeError`` when
        the recipe does not make the model's input."""
        from .window import Window
        if isinstance(window, str):
            with Window.from_string(window) as parsed:
                return self.set_input_window(parsed)
        if not isinstance(window, Window):
            raise TypeError("set_input_window: expected an ich.Window or a str, not %s"
                            % type(window).__name__)
        check(lib.ich_model_set_input_window(self._live(), window._live()))

    @labels.setter
    def labels(self, names):
        """Store the label names in output order (``ich_model_set_labels``)."""
        if isinstance(names, str):
            raise TypeError("labels must be a sequence of names, not a str")
        names = list(names)
        array = (ctypes.c_char_p * max(len(names), 1))()
        for i, name in enumerate(names):
            array[i] = c_string(name, "label name")
        check(lib.ich_model_set_labels(self._live(), array, len(names)))

    def __repr__(self):
        if not self._handle:
            return "ich.Model(<closed>)"
        return "ich.Model(%r)" % self.spec

    # ---- modes and passes -----------------------------------------------
    def init_weights(self, seed=0):
        """Re-initialise every parameter as PyTorch does, from `seed`."""
        check(lib.ich_model_init_weights(self._live(), int(seed)))

    def train(self, mode=True):
        """Training mode (batch statistics, dropout); returns self."""
        check(lib.ich_model_set_training(self._live(), 1 if mode else 0))
        return self

    def eval(self):
        """Evaluation mode (the default); returns self."""
        return self.train(False)

    def _images(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        shape = self.input_shape
        if x.ndim == 3:
            x = x[np.newaxis]
        if x.ndim != 4 or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
            raise _errors.error(_errors.ERR_SHAPE,
                                "expected images of shape (N, %d, %d, %d), got %s"
                                % (shape + (x.shape,)))
        return x

    def forward(self, x):
        """Logits, shape (N, outputs), of float32 NCHW images. In evaluation
        mode the batch may run in slices with the same results, to bound
        the activation memory (ICH_INFER_MEMORY, <ich/backend.h>)."""
        x = self._images(x)
        out = np.empty((x.shape[0], self.outputs), np.float32)
        with Interruptible() as guard:  # Ctrl-C between layers: KeyboardInterrupt
            status = lib.ich_model_forward(self._live(), x.ctypes.data_as(c_float_p), x.shape[0],
                                           out.ctypes.data_as(c_float_p), out.size)
        guard.check(status)
        return out

    __call__ = forward

    def backward(self, grad):
        """Propagate d loss / d logits (N, outputs) after a training-mode
        forward; parameter gradients accumulate (see :meth:`zero_grad`)."""
        grad = np.ascontiguousarray(grad, dtype=np.float32)
        with Interruptible() as guard:  # Ctrl-C between layers: KeyboardInterrupt
            status = lib.ich_model_backward(self._live(), grad.ctypes.data_as(c_float_p),
                                            grad.size)
        guard.check(status)

    def zero_grad(self):
        """Set every parameter gradient to zero."""
        check(lib.ich_model_zero_grad(self._live()))

    def predict(self, x, threshold=0.5):
        """Probabilities (N, outputs) in evaluation mode; for a cascade the
        subtypes are 0 where P(any) <= threshold (p > 0.5 predicts 1)."""
        x = self._images(x)
        out = np.empty((x.shape[0], self.outputs), np.float32)
        with Interruptible() as guard:  # Ctrl-C between layers: KeyboardInterrupt
            status = lib.ich_model_predict(self._live(), x.ctypes.data_as(c_float_p), x.shape[0],
                                           float(threshold), out.ctypes.data_as(c_float_p),
                                           out.size)
        guard.check(status)
        return out

    # ---- tensors --------------------------------------------------------
    def _views(self):
        handle = self._live()
        for i in range(lib.ich_model_tensor_count(handle)):
            view = _TensorView()
            check(lib.ich_model_tensor(handle, i, ctypes.byref(view)))
            yield i, view

    @staticmethod
    def _array(view, pointer):
        dtype = _DTYPES[view.type]
        shape = tuple(view.dims[d] for d in range(view.ndim))
        buf = (ctypes.c_char * (view.count * np.dtype(dtype).itemsize)).from_address(pointer)
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    def state_dict(self):
        """Parameters and buffers: {name: numpy copy}, in state_dict order."""
        return {view.name.decode(): self._array(view, view.data).copy()
                for _, view in self._views()}

    def grads(self):
        """Parameter gradients: {name: numpy copy}."""
        return {view.name.decode(): self._array(view, ctypes.addressof(view.grad.contents)).copy()
                for _, view in self._views() if view.grad}

    def load_state_dict(self, state, strict=True):
        """Copy arrays (numpy or anything np.asarray takes, e.g. torch
        tensors via .numpy()) into the model's tensors. With strict, the
        names must be exactly the model's."""
        views = {view.name.decode(): (i, view) for i, view in self._views()}
        if strict:
            missing = sorted(set(views) - set(state))
            extra = sorted(set(state) - set(views))
            if missing or extra:
                raise _errors.error(_errors.ERR_NOT_FOUND,
                                    "load_state_dict: missing %s, unexpected %s"
                                    % (missing, extra))
        for name, value in state.items():
            if name not in views:
                continue
            i, view = views[name]
            target = self._array(view, view.data)
            value = np.asarray(value)
            if tuple(value.shape) != target.shape:
                raise _errors.error(_errors.ERR_SHAPE, "load_state_dict: %s has shape %s, "
                                    "expected %s" % (name, value.shape, target.shape))
            target[...] = value.astype(target.dtype)
            lib.ich_model_tensor_changed(self._live(), i)

    def freeze(self, prefix=""):
        """Freeze the parameters whose name starts with `prefix` (all for
        ""); returns how many."""
        matched = ctypes.c_int32()
        check(lib.ich_model_freeze(self._live(), c_string(prefix, "prefix"), 1,
                                   ctypes.byref(matched)))
        return matched.value

    def unfreeze(self, prefix=""):
        """Undo :meth:`freeze` for the parameters starting with `prefix`."""
        matched = ctypes.c_int32()
        check(lib.ich_model_freeze(self._live(), c_string(prefix, "prefix"), 0,
                                   ctypes.byref(matched)))
        return matched.value

    # ---- cascade stages -------------------------------------------------
    @property
    def cascade_stages(self):
        """2 for a cascade model (stage 0 = "any", 1 = the subtypes), else 0."""
        return int(lib.ich_model_cascade_stages(self._live()))

    def cascade_stage(self, stage):
        """Stage `stage` (0 = "any", 1 = subtypes) of a cascade model as a
        :class:`CascadeStage` (prefix, first_output, outputs). Raises
        InvalidArgumentError for a model that is not a cascade or a stage
        out of range."""
        prefix = ctypes.c_char_p()
        first, count = ctypes.c_int32(), ctypes.c_int32()
        check(lib.ich_model_cascade_stage(self._live(), int(stage), ctypes.byref(prefix),
                                          ctypes.byref(first), ctypes.byref(count)))
        return CascadeStage(prefix.value.decode("utf-8"), first.value, count.value)

    @property
    def active_stage(self):
        """The stage forward and backward run: -1 (both, the default), 0 or 1
        (see :meth:`set_active_stage`)."""
        return int(lib.ich_model_active_stage(self._live()))

    def set_active_stage(self, stage):
        """Run only cascade stage `stage` (0 = "any", 1 = subtypes) in
        forward and backward, or both (-1 or None): the other stage's
        layers do not run (no time, no memory, no batch-norm statistics
        updates), its logits come out 0 and its parameters get no
        gradient; the active stage's logits and gradients are those of a
        both-stage pass. :meth:`predict` still gates the subtypes by
        P(any): set -1 to predict. Returns self. Raises InvalidArgumentError
        for a model that is not a cascade or a stage out of range."""
        check(lib.ich_model_set_active_stage(self._live(), -1 if stage is None else int(stage)))
        return self


class ModelBuilder(OwnedHandle):
    """A network built call by call (the C builder of include/ich/model.h);
    each method appends one item of the spec grammar and returns the
    builder, so calls chain::

        model = (ich.ModelBuilder(1, 64, 64).conv(8, 3, padding=1).relu()
                 .pool("maxpool", 2).flatten().linear(6).build())

    Blocks: ``begin("residual")`` ... ``next()`` (the shortcut) ... ``end()``;
    "concat" and "cascade" likewise, ``next()`` starting each next branch;
    ``begin("scale")`` ... ``end()`` is x * body(x) (squeeze-and-excitation).
    """

    _free = staticmethod(lib.ich_model_builder_free)

    def __init__(self, channels, rows, columns):
        handle = ctypes.c_void_p()
        check(lib.ich_model_builder_create(int(channels), int(rows), int(columns),
                                           ctypes.byref(handle)))
        self._handle = handle

    def conv(self, out, kernel, stride=1, padding=0, name=None, groups=1):
        """``conv OUT K``; ``groups`` > 1 for a grouped convolution (the
        input channels for a depthwise one)."""
        if int(groups) != 1:
            item = "conv %d %d stride %d pad %d groups %d" % (
                int(out), int(kernel), int(stride), int(padding), int(groups))
            return self.item(item if name is None else "%s = %s" % (name, item))
        check(lib.ich_model_builder_conv(self._live(), c_string(name, "name"), int(out),
                                         int(kernel), int(stride), int(padding)))
        return self

    def linear(self, out, name=None):
        check(lib.ich_model_builder_linear(self._live(), c_string(name, "name"), int(out)))
        return self

    def pool(self, kind, kernel, stride=None, padding=0):
        check(lib.ich_model_builder_pool(self._live(), c_string(kind, "kind"), int(kernel),
                                         int(kernel if stride is None else stride),
                                         int(padding)))
        return self

    def dropout(self, p):
        check(lib.ich_model_builder_dropout(self._live(), float(p)))
        return self

    def layer(self, kind, name=None):
        check(lib.ich_model_builder_layer(self._live(), c_string(name, "name"),
                                          c_string(kind, "kind")))
        return self

    def relu(self):
        return self.layer("relu")

    def batchnorm(self, name=None):
        return self.layer("batchnorm", name)

    def gap(self):
        return self.layer("gap")

    def flatten(self):
        return self.layer("flatten")

    def silu(self, name=None):
        return self.layer("silu", name)

    def gelu(self, name=None):
        return self.layer("gelu", name)

    def sigmoid(self, name=None):
        return self.layer("sigmoid", name)

    def item(self, text):
        check(lib.ich_model_builder_item(self._live(), c_string(text, "item")))
        return self

    def begin(self, kind):
        check(lib.ich_model_builder_begin(self._live(), c_string(kind, "kind")))
        return self

    def next(self):
        check(lib.ich_model_builder_next(self._live()))
        return self

    def end(self):
        check(lib.ich_model_builder_end(self._live()))
        return self

    @property
    def spec(self):
        """The spec text built so far."""
        return lib.ich_model_builder_spec(self._live()).decode("utf-8")

    def build(self):
        """The :class:`Model` of the spec built so far."""
        handle = ctypes.c_void_p()
        check(lib.ich_model_builder_build(self._live(), ctypes.byref(handle)))
        return Model(_handle=handle)
