# Type stubs for the ich package (PEP 561: shipped with py.typed).
#
# Each module's .pyi beside its .py gives its public names' types; this
# file re-exports them as ich/__init__.py does. The test command runs
# `python3 -m mypy.stubtest ich`, which fails when a public name (one in a
# module's __all__) has no stub here: add it to the module's .pyi and to
# the lists below.
from ._errors import (
    ERR_CANCELLED as ERR_CANCELLED,
    ERR_FORMAT as ERR_FORMAT,
    ERR_INTERNAL as ERR_INTERNAL,
    ERR_INVALID_ARGUMENT as ERR_INVALID_ARGUMENT,
    ERR_IO as ERR_IO,
    ERR_NO_MEMORY as ERR_NO_MEMORY,
    ERR_NOT_FOUND as ERR_NOT_FOUND,
    ERR_SHAPE as ERR_SHAPE,
    ERR_UNSUPPORTED as ERR_UNSUPPORTED,
    OK as OK,
    CancelledError as CancelledError,
    FormatError as FormatError,
    IchError as IchError,
    IchFileNotFoundError as IchFileNotFoundError,
    MissingFileError as MissingFileError,
    IchIOError as IchIOError,
    InternalError as InternalError,
    InvalidArgumentError as InvalidArgumentError,
    NoMemoryError as NoMemoryError,
    NotFoundError as NotFoundError,
    ShapeError as ShapeError,
    UnsupportedError as UnsupportedError,
    status_string as status_string,
)
from .dicom import (
    DicomImage as DicomImage,
    default_dicom_limits as default_dicom_limits,
    dicom_limits as dicom_limits,
    read_dicom as read_dicom,
    read_dicom_bytes as read_dicom_bytes,
    set_dicom_limits as set_dicom_limits,
    write_ct as write_ct,
)
from .window import TUTORIAL_RECIPE as TUTORIAL_RECIPE, Window as Window, window_preset as window_preset
from .image import read_png as read_png, write_png as write_png
from .labels import *
from .split import *
from .phantom import *
from .augment import *
from .dataset import *
from .model import *
from .optim import *
from .train import *
from .metrics import *
from .predict import *
from .preprocess import *
from .report import *
from .backend import *
from .files import *
from .pretrained import *
from . import dist as dist
from .log import (
    DEBUG as LOG_DEBUG,
    ERROR as LOG_ERROR,
    INFO as LOG_INFO,
    WARNING as LOG_WARNING,
    set_log_callback as set_log_callback,
)

__version__: str

def version() -> str: ...
def library_path() -> str: ...
