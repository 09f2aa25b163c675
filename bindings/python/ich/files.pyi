# Type stubs for ich.files (see files.py for the documentation).
from typing import List, Tuple

from ._util import _StrPath

__all__ = ["image_path", "find_files", "WALK_HIDDEN"]

WALK_HIDDEN: int

def image_path(folder: _StrPath, image_id: str, extension: str = ...) -> str: ...
def find_files(folder: _StrPath, hidden: bool = ...) -> Tuple[List[str], List[Tuple[str, str]]]: ...
