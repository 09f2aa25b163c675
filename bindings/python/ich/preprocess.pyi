# Type stubs for ich.preprocess (see preprocess.py for the documentation).
from typing import Callable, NamedTuple, Optional, Union

from ._util import _StrPath
from .window import Window

__all__ = ["preprocess_folder", "PreprocessSummary"]

class PreprocessSummary(NamedTuple):
    files: int
    converted: int
    existing: int
    failed: int
    skipped: int
    threads: int

def preprocess_folder(input_dir: _StrPath, output_dir: _StrPath, window: Union[Window, str],
                      threads: int = ..., overwrite: bool = ...,
                      progress: Optional[Callable[[int, int], object]] = ...
                      ) -> PreprocessSummary: ...
