# Type stubs for ich.log (see log.py for the documentation).
from typing import Callable, Optional, Union

DEBUG: int
INFO: int
WARNING: int
ERROR: int

def set_log_callback(fn: Optional[Callable[[int, str], object]],
                     level: Union[int, str] = ...) -> None: ...
