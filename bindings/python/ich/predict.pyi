# Type stubs for ich.predict (see predict.py for the documentation).
from typing import Iterable, List, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._util import _StrPath
from .model import Model
from .window import Window

__all__ = ["predict_files"]

def predict_files(model: Model, paths_or_folder: Union[_StrPath, Iterable[_StrPath]],
                  batch_size: int = ..., threshold: float = ...,
                  window: Union[None, Window, str] = ...
                  ) -> Tuple[List[str], npt.NDArray[np.float32]]: ...
