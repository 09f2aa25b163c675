# Type stubs for ich._util: the shared base of the handle-owning classes.
import os
from types import TracebackType
from typing import Optional, Type, TypeVar, Union

_T = TypeVar("_T", bound=OwnedHandle)

#: A file system path as every ich function takes it.
_StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

INT32_MAX: int

def fspath_bytes(path: _StrPath) -> bytes: ...
def c_string(value: Optional[str], name: str) -> Optional[bytes]: ...

class OwnedHandle:
    def close(self) -> None: ...
    def __del__(self) -> None: ...
    def __enter__(self: _T) -> _T: ...
    def __exit__(self, *exc: object) -> None: ...
