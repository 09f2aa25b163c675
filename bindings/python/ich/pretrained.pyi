# Type stubs for ich.pretrained (see pretrained.py for the documentation).
from typing import Dict, List, Optional, Sequence, Tuple

from ._util import _StrPath

__all__ = ["convert_pytorch_checkpoint", "ConversionReport"]

SOURCES: Tuple[str, ...]

class ConversionReport:
    src: str
    dst: str
    source: str
    architecture: Optional[str]
    container: Optional[str]
    stripped: List[str]
    renamed: Dict[str, str]
    dropped: Dict[str, str]
    converted: Dict[str, str]
    tensors: int
    notes: List[str]
    def __init__(self, src: _StrPath, dst: _StrPath) -> None: ...

def convert_pytorch_checkpoint(src: _StrPath, dst: _StrPath, *, source: str = ...,
                               ema: bool = ...) -> ConversionReport: ...
def main(argv: Optional[Sequence[str]] = ...) -> int: ...
