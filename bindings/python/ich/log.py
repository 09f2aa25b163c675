"""Routing libich's log messages to a Python callable."""

import atexit
import threading

from ._lib import LOG_FN, lib

DEBUG = 0
INFO = 1
WARNING = 2
ERROR = 3

_LEVEL_NAMES = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}

_lock = threading.Lock()
_current = None  # the installed ctypes callback: keeps it alive while libich holds it


def _level(level):
    if isinstance(level, str):
        try:
            return _LEVEL_NAMES[level.lower()]
        except KeyError:
            raise ValueError("unknown log level %r; use one of %s"
                             % (level, sorted(_LEVEL_NAMES))) from None
    level = int(level)
    if not DEBUG <= level <= ERROR:
        raise ValueError("log level must be 0 (debug) to 3 (error), not %d" % level)
    return level


def set_log_callback(fn, level=INFO):
    """Send libich's log messages of `level` and above to ``fn(level,
    message)`` (level an int: ich.LOG_DEBUG=0, LOG_INFO=1, LOG_WARNING=2,
    LOG_ERROR=3; message a str). `level` may also be "debug", "info",
    "warning" or "error". ``fn=None`` removes the callback (libich is then
    silent, the default).

    `fn` may be called from libich's worker threads, so it must be
    thread-safe; exceptions it raises are printed and ignored. Do not call
    this while other threads are running libich functions.

    To forward to the logging module::

        import logging
        log = logging.getLogger("ich")
        ich.set_log_callback(lambda lvl, msg: log.log(10 * (lvl + 1), msg))
    """
    global _current
    level = _level(level)
    with _lock:
        if fn is None:
            lib.ich_set_log_callback(LOG_FN(), None, level)
            _current = None
            return
        if not callable(fn):
            raise TypeError("set_log_callback: fn must be callable or None")

        def trampoline(c_level, c_message, user):
            fn(int(c_level), (c_message or b"").decode("utf-8", "replace"))

        callback = LOG_FN(trampoline)
        lib.ich_set_log_callback(callback, None, level)
        _current = callback  # replace the old one only after libich stopped using it


@atexit.register
def _remove_at_exit():
    # The ctypes trampoline must not outlive the interpreter: a libich thread
    # that logs during shutdown would call into a dead Python.
    if _current is not None:
        lib.ich_set_log_callback(LOG_FN(), None, INFO)
