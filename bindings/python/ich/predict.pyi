# Type stubs for ich.predict (see predict.py for the documentation).
from typing import Callable, Iterable, List, NamedTuple, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._util import _StrPath
from .model import Model
from .window import Window

__all__ = ["predict_files", "predict_folder", "PredictSummary"]

class PredictSummary(NamedTuple):
    files: int
    predicted: int
    failed: int
    skipped: int

def predict_files(model: Model, paths_or_folder: Union[_StrPath, Iterable[_StrPath]],
                  batch_size: int = ..., threshold: float = ...,
                  window: Union[None, Window, str] = ..., threads: int = ...,
                  progress: Optional[Callable[[int, int], object]] = ...
                  ) -> Tuple[List[str], npt.NDArray[np.float32]]: ...

def predict_folder(model: Model, input: _StrPath, out_path: _StrPath, batch_size: int = ...,
                   threshold: float = ..., window: Union[None, Window, str] = ...,
                   threads: int = ..., format: str = ...,
                   progress: Optional[Callable[[int, int], object]] = ...
                   ) -> PredictSummary: ...
