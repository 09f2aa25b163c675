# Type stubs for ich.phantom (see phantom.py for the documentation).
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._util import _StrPath

__all__ = ["write_phantom", "phantom_slice", "phantom_tissues", "PHANTOM_TYPES",
           "PHANTOM_TISSUES"]

PHANTOM_TYPES: Tuple[str, ...]
PHANTOM_TISSUES: Tuple[str, ...]

def write_phantom(dir: _StrPath, patients: int = ..., slices: int = ..., size: int = ...,
                  studies: int = ..., seed: int = ..., prevalence: float = ...,
                  multiple: float = ..., size_range: Tuple[float, float] = ...,
                  noise: float = ...,
                  type_weights: Union[None, Sequence[float], Mapping[str, float]] = ...,
                  layout: str = ..., threads: int = ...,
                  progress: Optional[Callable[[int, int], object]] = ...,
                  vary_intercept: bool = ...) -> int: ...
def phantom_slice(patient: int, study: int, slice: int, **options: Any
                  ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], str]: ...
def phantom_tissues(patient: int, study: int, slice: int, **options: Any
                    ) -> npt.NDArray[np.uint8]: ...
