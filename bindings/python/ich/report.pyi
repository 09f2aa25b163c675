# Type stubs for ich.report (see report.py for the documentation).
import os
import pathlib
from typing import Callable, Optional, Union

from ._util import _StrPath
from .window import Window

__all__ = ["evaluate_report", "EvaluateReport"]

class EvaluateReport(os.PathLike[str]):
    out_dir: pathlib.Path
    rows: int
    evaluated: int
    left_out: int
    def __init__(self, out_dir: _StrPath, rows: int, evaluated: int, left_out: int) -> None: ...
    def __fspath__(self) -> str: ...
    def __truediv__(self, name: Union[str, "os.PathLike[str]"]) -> pathlib.Path: ...

def evaluate_report(checkpoint: _StrPath, labels_csv: _StrPath, image_dir: _StrPath,
                    out_dir: _StrPath, batch_size: int = ..., workers: int = ...,
                    threshold: float = ..., bootstrap: int = ..., seed: int = ...,
                    progress: Optional[Callable[[int, int], object]] = ...,
                    window: Union[None, Window, str] = ...) -> EvaluateReport: ...
