"""ich: Python bindings (ctypes) for libich, the brain-CT hemorrhage pipeline.

Quick start::

    import ich

    img = ich.read_dicom("slice.dcm")          # img.pixels, img.hu (numpy)
    with ich.Window("blood,brain,bone", size=256) as win:
        rgb = win.apply(img.hu)                 # (256, 256, 3) uint8
        x = win.apply(img.hu, dtype="float32")  # (3, 256, 256) float32
    ich.write_png("slice.png", rgb)

Every libich failure raises :class:`IchError` (a subclass per status code,
see ``ich.IchError.__doc__``) carrying ``.status``, ``.status_name`` and the
library's message. Ctrl-C during a long call (training, the evaluation
report, writing the phantom, augmenting, selecting files) stops it cleanly
and raises KeyboardInterrupt; a missing file raises an error that is also a
FileNotFoundError. The shared library is found through ``ICH_LIBRARY``, the
repository's build tree or the system; see ``ich._lib``.
"""

from ._lib import lib as _cdll
from ._errors import (
    IchError,
    InvalidArgumentError,
    NoMemoryError,
    IchIOError,
    FormatError,
    UnsupportedError,
    NotFoundError,
    ShapeError,
    InternalError,
    CancelledError,
    IchFileNotFoundError,
    MissingFileError,
    status_string,
    OK,
    ERR_INVALID_ARGUMENT,
    ERR_NO_MEMORY,
    ERR_IO,
    ERR_FORMAT,
    ERR_UNSUPPORTED,
    ERR_NOT_FOUND,
    ERR_SHAPE,
    ERR_INTERNAL,
    ERR_CANCELLED,
)
from .dicom import (DicomImage, default_dicom_limits, dicom_limits, read_dicom, read_dicom_bytes,
                    set_dicom_limits, write_ct)
from .window import TUTORIAL_RECIPE, Window, window_preset
from .image import write_png, read_png
from . import labels as _labels_mod, split as _split_mod, phantom as _phantom_mod, \
    augment as _augment_mod, dataset as _dataset_mod, model as _model_mod, \
    optim as _optim_mod, train as _train_mod, metrics as _metrics_mod, \
    predict as _predict_mod, report as _report_mod, backend as _backend_mod, \
    files as _files_mod, preprocess as _preprocess_mod
from . import dist  # noqa: F401  (ich.dist.rank(), size(), describe(): a namespace of its own)
from .labels import *  # noqa: F401,F403  (each module lists its names in __all__)
from .split import *  # noqa: F401,F403
from .phantom import *  # noqa: F401,F403
from .augment import *  # noqa: F401,F403
from .dataset import *  # noqa: F401,F403
from .model import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .train import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .predict import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403
from .backend import *  # noqa: F401,F403
from .files import *  # noqa: F401,F403
from .preprocess import *  # noqa: F401,F403
from .log import set_log_callback, DEBUG as LOG_DEBUG, INFO as LOG_INFO, \
    WARNING as LOG_WARNING, ERROR as LOG_ERROR


def version():
    """Version of the loaded libich as "major.minor.patch"."""
    return _cdll.ich_version().decode("ascii")


def library_path():
    """File name of the loaded libich shared library."""
    return _cdll._name


__version__ = version()

__all__ = [
    "IchError", "InvalidArgumentError", "NoMemoryError", "IchIOError", "FormatError",
    "UnsupportedError", "NotFoundError", "ShapeError", "InternalError", "CancelledError",
    "IchFileNotFoundError", "MissingFileError", "status_string",
    "OK", "ERR_INVALID_ARGUMENT", "ERR_NO_MEMORY", "ERR_IO", "ERR_FORMAT",
    "ERR_UNSUPPORTED", "ERR_NOT_FOUND", "ERR_SHAPE", "ERR_INTERNAL", "ERR_CANCELLED",
    "DicomImage", "read_dicom", "read_dicom_bytes", "write_ct", "default_dicom_limits",
    "dicom_limits", "set_dicom_limits", "Window", "window_preset", "TUTORIAL_RECIPE", "write_png", "read_png",
    "set_log_callback", "LOG_DEBUG", "LOG_INFO", "LOG_WARNING", "LOG_ERROR",
    "version", "library_path", "__version__",
]
for _mod in (_labels_mod, _split_mod, _phantom_mod, _augment_mod, _dataset_mod, _model_mod,
             _optim_mod, _train_mod, _metrics_mod, _predict_mod, _report_mod, _backend_mod,
             _files_mod, _preprocess_mod):
    __all__ += _mod.__all__

# PyTorch checkpoints -> safetensors (imports torch only when called)
from . import pretrained as _pretrained_mod  # noqa: E402
from .pretrained import *  # noqa: F401,F403,E402
__all__ += _pretrained_mod.__all__
