"""Stopping long libich calls: Ctrl-C and progress callbacks.

A long libich call (training, the evaluation report, writing the phantom,
offline augmentation, selecting files, a folder walk...) runs in C, where
Python cannot raise KeyboardInterrupt. The wrappers therefore always pass
libich a progress callback of their own (wrapping the user's, if any), and
run the call inside :class:`Interruptible`:

    with Interruptible(user_progress) as guard:
        callback = PROGRESS_FN(guard.wrap(counts))  # user_progress(done, total)
        options.progress = callback                 # kept alive until the call returns
        status = lib.ich_something(...)
    guard.check(status)

While the call runs, SIGINT (Ctrl-C) sets a flag instead of raising. The
next callback (libich calls them from the calling thread, several times a
second) sees the flag and returns 1; libich stops cleanly and returns
ICH_ERR_CANCELLED, and ``check`` raises KeyboardInterrupt. A training batch
of a large network can take many seconds on a CPU, so the guard also
installs the thread's cancel check (``ich_set_cancel_check``), which libich
consults between the layers of every forward and backward pass; the model
wrappers (``Model.forward``, ``backward``, ``predict``) use it alone.

Why a flag and not just ``except KeyboardInterrupt`` in the callback:
CPython runs a pending signal handler at the first instruction of the
callback, before any ``try`` in it, and ctypes swallows (prints) an
exception raised there, so the interrupt would be lost and the call would
go on.

A user callback that returns True gives :class:`ich.CancelledError`; an
exception it raises stops the call and is raised again by ``check``.
"""

import ctypes
import signal
import threading

from ._errors import check
from ._lib import _declare

__all__ = ["Interruptible", "counts"]

#: ich_cancel_fn: int (*)(void *user)
_CANCEL_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_lib_set_cancel_check = _declare("ich_set_cancel_check", None, _CANCEL_FN, ctypes.c_void_p)

# The guard whose call runs on this thread (only the main thread has one:
# only it receives SIGINT).
_local = threading.local()


def _cancel_check(user):
    guard = getattr(_local, "guard", None)
    return 1 if guard is not None and guard.stopping else 0


# One ctypes object for the whole process, so it is never freed while
# libich may call it.
_CANCEL_CHECK = _CANCEL_FN(_cancel_check)

class Interruptible:
    """Context for one long libich call that Ctrl-C and `user` may stop.

    user: None, or a callable taking the values that ``wrap``'s `convert`
    returns; a true result asks libich to stop (ICH_ERR_CANCELLED).
    """

    def __init__(self, user=None):
        if user is not None and not callable(user):
            raise TypeError("progress must be callable or None")
        self.user = user
        self.interrupted = False  # SIGINT came during the call
        self.raised = None        # the exception the user's callback raised
        self._previous = None

    # -- SIGINT ---------------------------------------------------------------

    def _on_sigint(self, signum, frame):
        self.interrupted = True

    @property
    def stopping(self):
        """True once the call should stop (Ctrl-C, or the user's callback
        stopped it or raised)."""
        return self.interrupted or self.raised is not None

    def __enter__(self):
        # Only the main thread receives signals and may set handlers; a
        # handler the application installed itself is left alone (it runs
        # as usual, and an exception it raises in a callback stops the call),
        # as is ours when guards nest (the outer one keeps the flag).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            _local.guard = self
            _lib_set_cancel_check(_CANCEL_CHECK, None)
        return self

    def __exit__(self, kind, value, traceback):
        if self._previous is not None:
            _lib_set_cancel_check(_CANCEL_FN(), None)
            _local.guard = None
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    # -- the callback ----------------------------------------------------------

    def wrap(self, convert=None):
        """A Python function for a ctypes callback type: returns 1 (stop)
        after Ctrl-C, after the user's callback returned True or raised, else
        0. `convert(*c_arguments)` turns libich's arguments into the user's
        (a tuple); None passes them unchanged."""

        def callback(*args):
            try:
                if self.stopping:
                    return 1
                if self.user is None:
                    return 0
                values = convert(*args) if convert is not None else args
                return 1 if self.user(*values) else 0
            except BaseException as exc:  # noqa: B902 (raised again by check())
                if isinstance(exc, KeyboardInterrupt):
                    self.interrupted = True
                elif self.raised is None:
                    self.raised = exc
                return 1

        return callback

    def check(self, status):
        """After the call (outside the ``with``): raise KeyboardInterrupt
        after Ctrl-C, the user's callback's exception, or the IchError of
        `status` (CancelledError when the user's callback stopped it)."""
        if self.interrupted:
            raise KeyboardInterrupt
        if self.raised is not None:
            raise self.raised
        check(status)


def counts(user, done, total, what):
    """``wrap``'s `convert` for ich_progress_fn: the user sees (done, total)."""
    return (int(done), int(total))
