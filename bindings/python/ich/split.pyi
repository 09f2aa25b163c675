# Type stubs for ich.split (see split.py for the documentation).
from typing import Callable, Dict, Optional, Sequence, Tuple

from ._util import _StrPath
from .labels import Labels

__all__ = ["split_labels", "select_files", "groups_from_dicom"]


def split_labels(labels: Labels, ratios: Sequence[float] = ..., seed: int = ...,
                 stratify: bool = ...) -> Tuple[Labels, Labels, Labels]: ...
def select_files(labels: Labels, src_dir: _StrPath, dst_dir: _StrPath, mode: str = ...,
                 threads: int = ..., extension: str = ...,
                 progress: Optional[Callable[[int, int], object]] = ...) -> Dict[str, int]: ...
def groups_from_dicom(labels: Labels, image_dir: _StrPath, threads: int = ...) -> int: ...
