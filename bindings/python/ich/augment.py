"""Augmentation: random flips, rotation, brightness/contrast, blur and
elastic deformation (include/ich/augment.h), online and offline."""

import ctypes
import numbers

import numpy as np

from . import _errors
from ._cancel import Interruptible, counts
from ._errors import check
from ._lib import _declare, c_float_p, c_uint8_p, lib
from ._util import OwnedHandle, INT32_MAX, fspath_bytes
from .image import read_png
from .labels import Labels

__all__ = ["Augment", "augment_offline"]

_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                ctypes.c_char_p)


class _Choices(ctypes.Structure):
    """Mirror of ``struct ich_augment_choices``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("hflip", ctypes.c_int32),
        ("vflip", ctypes.c_int32),
        ("rotate", ctypes.c_int32),
        ("degrees", ctypes.c_double),
        ("elastic", ctypes.c_int32),
        ("elastic_alpha", ctypes.c_double),
        ("elastic_sigma", ctypes.c_double),
        ("elastic_seed", ctypes.c_uint64),
        ("brightness_contrast", ctypes.c_int32),
        ("contrast", ctypes.c_double),
        ("brightness", ctypes.c_double),
        ("blur", ctypes.c_int32),
        ("blur_sigma", ctypes.c_double),
    ]


class _OfflineOptions(ctypes.Structure):
    """Mirror of ``struct ich_augment_offline_options``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("target", ctypes.c_int64),
        ("seed", ctypes.c_uint64),
        ("threads", ctypes.c_int32),
        ("progress", _PROGRESS_FN),
        ("progress_user", ctypes.c_void_p),
    ]


_vp = ctypes.c_void_p
_d = ctypes.c_double
_declare("ich_augment_create", ctypes.c_int, ctypes.POINTER(_vp))
_declare("ich_augment_free", None, _vp)
_declare("ich_augment_set_flip", ctypes.c_int, _vp, _d, _d)
_declare("ich_augment_set_rotation", ctypes.c_int, _vp, _d, _d)
_declare("ich_augment_set_brightness_contrast", ctypes.c_int, _vp, _d, _d, _d)
_declare("ich_augment_set_blur", ctypes.c_int, _vp, _d, _d, _d)
_declare("ich_augment_set_elastic", ctypes.c_int, _vp, _d, _d, _d)
_declare("ich_augment_parse", ctypes.c_int, _vp, ctypes.c_char_p)
_declare("ich_augment_describe", ctypes.c_int, _vp, ctypes.c_char_p, ctypes.c_size_t)
_declare("ich_augment_choices_init", None, ctypes.POINTER(_Choices))
_declare("ich_augment_choose", ctypes.c_int, _vp, ctypes.c_uint64, ctypes.POINTER(_Choices))
_declare("ich_augment_apply_choices_f32", ctypes.c_int, ctypes.POINTER(_Choices), c_float_p,
         ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)
_declare("ich_augment_apply_choices_u8", ctypes.c_int, ctypes.POINTER(_Choices), c_uint8_p,
         ctypes.c_int32, ctypes.c_int32, ctypes.c_int32)
_declare("ich_augment_apply_f32", ctypes.c_int, _vp, ctypes.c_uint64, c_float_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32)
_declare("ich_augment_apply_u8", ctypes.c_int, _vp, ctypes.c_uint64, c_uint8_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32)
_declare("ich_augment_offline_options_init", None, ctypes.POINTER(_OfflineOptions))
_declare("ich_augment_offline", ctypes.c_int, _vp, _vp, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(_OfflineOptions), ctypes.POINTER(_vp))


def _invalid(message):
    return _errors.error(_errors.ERR_INVALID_ARGUMENT, message)


def _seed(value, name="seed"):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _invalid("%s must be an integer, not %r" % (name, value))
    value = int(value)
    if not 0 <= value < 2**64:
        raise _invalid("%s must be in 0 .. 2**64 - 1, not %d" % (name, value))
    return value


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid("%s must be a number, not %r" % (name, value))
    return float(value)


class Augment(OwnedHandle):
    """An augmentation recipe (``ich_augment``).

    ``Augment(spec)`` starts from a text recipe such as
    ``"hflip:0.5,rotate:0.5:15,blur:0.2:0.5:1.5"`` (None or "": nothing);
    the ``set_*`` methods change one transform (p = 0 removes it) and
    return the recipe, so calls chain. The transforms, their order and
    parameters are described at the top of ``include/ich/augment.h``.

    :meth:`apply` augments a copy of an image; the random choices come
    from ``seed`` alone, so the same seed gives the same result, and a
    float32 and a uint8 image get the same choices. ``str(augment)`` is the
    text recipe. Invalid values raise ``InvalidArgumentError``, unknown
    transform names ``NotFoundError``. One recipe may be applied from many
    threads at once.
    """

    _free = staticmethod(lib.ich_augment_free)

    def __init__(self, spec=None):
        self._handle = None
        handle = ctypes.c_void_p()
        check(lib.ich_augment_create(ctypes.byref(handle)))
        self._handle = handle
        if spec:
            self.parse(spec)

    # ---- configuration --------------------------------------------------------

    def parse(self, spec):
        """Add the transforms of a text recipe; nothing changes on error."""
        if not isinstance(spec, str):
            raise TypeError("spec must be a str, not %s" % type(spec).__name__)
        check(lib.ich_augment_parse(self._live(), spec.encode("utf-8")))
        return self

    def set_flip(self, p_horizontal=0.0, p_vertical=0.0):
        """Mirror left-right with probability p_horizontal, top-bottom with
        p_vertical."""
        check(lib.ich_augment_set_flip(self._live(), _real(p_horizontal, "p_horizontal"),
                                       _real(p_vertical, "p_vertical")))
        return self

    def set_rotation(self, p, degrees):
        """Rotate by an angle uniform in [-degrees, degrees] (<= 180)."""
        check(lib.ich_augment_set_rotation(self._live(), _real(p, "p"),
                                           _real(degrees, "degrees")))
        return self

    def set_brightness_contrast(self, p, brightness, contrast):
        """``v' = (v - mean) * c + mean + b * range``, c uniform in
        [1 - contrast, 1 + contrast], b uniform in [-brightness, brightness]."""
        check(lib.ich_augment_set_brightness_contrast(self._live(), _real(p, "p"),
                                                      _real(brightness, "brightness"),
                                                      _real(contrast, "contrast")))
        return self

    def set_blur(self, p, sigma_min, sigma_max):
        """Gaussian blur with sd uniform in [sigma_min, sigma_max] pixels."""
        check(lib.ich_augment_set_blur(self._live(), _real(p, "p"), _real(sigma_min, "sigma_min"),
                                       _real(sigma_max, "sigma_max")))
        return self

    def set_elastic(self, p, alpha, sigma):
        """Elastic deformation: noise smoothed by a gaussian of sd sigma,
        scaled by alpha pixels."""
        check(lib.ich_augment_set_elastic(self._live(), _real(p, "p"), _real(alpha, "alpha"),
                                          _real(sigma, "sigma")))
        return self

    def describe(self):
        """The recipe as text (what :meth:`parse` and ``Augment(spec)`` read)."""
        text = ctypes.create_string_buffer(4096)
        check(lib.ich_augment_describe(self._live(), text, len(text)))
        return text.value.decode("utf-8")

    def __str__(self):
        return self.describe()

    def __repr__(self):
        if self._handle is None:
            return "<ich.Augment (closed)>"
        return "ich.Augment(%r)" % self.describe()

    # ---- applying ---------------------------------------------------------------

    def choices(self, seed):
        """The random choices :meth:`apply` makes for `seed`, as a dict
        (transforms that are off have neutral values)."""
        c = _Choices()
        c.size = ctypes.sizeof(c)  # as the C macro does (ICH_SIZED)
        lib.ich_augment_choices_init(ctypes.byref(c))
        check(lib.ich_augment_choose(self._live(), _seed(seed), ctypes.byref(c)))
        out = {name: getattr(c, name) for name, _ in _Choices._fields_ if name != "size"}
        for name in ("hflip", "vflip", "rotate", "elastic", "brightness_contrast", "blur"):
            out[name] = bool(out[name])
        return out

    def apply(self, image, seed):
        """Return an augmented copy of `image` (the input is not changed).

        float32 images are (channels, rows, columns) or (rows, columns);
        uint8 images are (rows, columns, channels) or (rows, columns), as
        :func:`read_png` returns them, and are clamped and rounded. Raises
        TypeError for another dtype and ``ShapeError`` for another number of
        dimensions.
        """
        return self._run(image, seed=_seed(seed))

    def apply_choices(self, image, choices):
        """Return `image` transformed by given choices (a dict as
        :meth:`choices` returns, e.g. with "hflip" set for a fixed test-time
        flip) instead of random ones; missing keys keep neutral values."""
        c = _Choices()
        c.size = ctypes.sizeof(c)  # as the C macro does (ICH_SIZED)
        lib.ich_augment_choices_init(ctypes.byref(c))
        for name, value in dict(choices).items():
            if name == "size" or not hasattr(c, name):
                raise _invalid("apply_choices: unknown choice %r" % (name,))
            setattr(c, name, type(getattr(c, name))(value))
        return self._run(image, choices=c)

    def _run(self, image, seed=None, choices=None):
        arr = np.asarray(image)
        if arr.dtype not in (np.float32, np.uint8):
            raise TypeError("Augment.apply: image must be float32 or uint8, not %s" % arr.dtype)
        if arr.ndim not in (2, 3):
            raise _errors.error(_errors.ERR_SHAPE,
                                "Augment.apply: image must be 2-D or 3-D, got shape %s"
                                % (arr.shape,))
        if arr.size == 0 or max(arr.shape) > INT32_MAX:
            raise _invalid("Augment.apply: bad image shape %s" % (arr.shape,))
        out = np.array(arr, order="C", copy=True)
        if out.dtype == np.float32:
            c, h, w = (1,) + out.shape if out.ndim == 2 else out.shape
            data = out.ctypes.data_as(c_float_p)
            if choices is None:
                check(lib.ich_augment_apply_f32(self._live(), seed, data, c, h, w))
            else:
                check(lib.ich_augment_apply_choices_f32(ctypes.byref(choices), data, c, h, w))
        else:
            h, w, c = out.shape + (1,) if out.ndim == 2 else out.shape
            data = out.ctypes.data_as(c_uint8_p)
            if choices is None:
                check(lib.ich_augment_apply_u8(self._live(), seed, data, h, w, c))
            else:
                check(lib.ich_augment_apply_choices_u8(ctypes.byref(choices), data, h, w, c))
        return out


def augment_offline(augment, train_labels, image_dir, out_dir, target=0, seed=0, threads=0,
                    progress=None):
    """Offline augmentation of the minority labels of a training table.

    For every label with fewer than `target` positive rows (0: the largest
    label's count), augmented copies of positive rows' images
    ``image_dir/<id>.png`` are written as ``out_dir/<id>_aug_<k>.png`` until
    the label has `target` positives; a copy counts for every label its row
    carries. Returns a new :class:`Labels`: the source rows, then the
    copies (with their source's labels and group). Unreadable images, and
    rows whose ID cannot name a file inside the folders
    (:func:`ich.image_path`'s rule), are logged and skipped: nothing is
    read or written outside `image_dir` and `out_dir`. `progress`, if given, is called as
    ``progress(done, total)`` with counts of source images; returning True
    cancels (``ich.CancelledError``); Ctrl-C stops the work and raises
    KeyboardInterrupt. See ``ich_augment_offline`` in
    augment.h.
    """
    if not isinstance(augment, Augment):
        raise TypeError("augment must be an ich.Augment")
    if not isinstance(train_labels, Labels):
        raise TypeError("train_labels must be an ich.Labels")
    if isinstance(target, bool) or not isinstance(target, numbers.Integral) or target < 0:
        raise _invalid("target must be an integer >= 0, not %r" % (target,))
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) \
            or not 0 <= threads <= INT32_MAX:
        raise _invalid("threads must be an integer >= 0, not %r" % (threads,))
    options = _OfflineOptions()
    options.size = ctypes.sizeof(options)  # as the C macro does (ICH_SIZED)
    lib.ich_augment_offline_options_init(ctypes.byref(options))
    options.target = int(target)
    options.seed = _seed(seed)
    options.threads = int(threads)
    handle = ctypes.c_void_p()
    # Always a callback of ours, so that Ctrl-C stops the C loop (ich._cancel).
    with Interruptible(progress) as guard:
        callback = _PROGRESS_FN(guard.wrap(counts))
        options.progress = callback
        status = lib.ich_augment_offline(augment._live(), train_labels._live(),
                                         fspath_bytes(image_dir), fspath_bytes(out_dir),
                                         ctypes.byref(options), ctypes.byref(handle))
    guard.check(status)
    return Labels._from_handle(handle)
