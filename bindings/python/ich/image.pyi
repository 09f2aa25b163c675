# Type stubs for ich.image (see image.py for the documentation).
import numpy as np
import numpy.typing as npt

from ._util import _StrPath

def write_png(path: _StrPath, array: npt.ArrayLike) -> None: ...
def read_png(path: _StrPath) -> npt.NDArray[np.uint8]: ...
