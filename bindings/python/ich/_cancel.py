"""Stopping long libich calls: Ctrl-C and progress callbacks.

A long libich call (training, the evaluation report, writing the phantom,
offline augmentation, selecting files, a folder walk...) runs in C, where
Python cannot raise KeyboardInterrupt. The wrappers therefore always pass
libich a progress callback of their own (wrapping the user's, if any), and
run the call inside :class:`Interruptible`:

    with Interruptible(user_progress) as guard:
        options.progress = PROGRESS_FN(guard.wrap(lambda user, done, total, what:
                                                  (done, total)))
        status = lib.ich_something(...)
    guard.check(status)

While the call runs, SIGINT (Ctrl-C) sets a flag instead of raising. The
next callback (libich calls them from the calling thread, several times a
second) sees the flag and returns 1; libich stops cleanly and returns
ICH_ERR_CANCELLED, and ``check`` raises KeyboardInterrupt. Why a flag and not
just ``except KeyboardInterrupt`` in the callback: CPython runs a pending
signal handler at the first instruction of the callback, before any ``try``
in it, and ctypes swallows (prints) an exception raised there, so the
interrupt would be lost and the call would go on.

A user callback that returns True gives :class:`ich.CancelledError`; an
exception it raises stops the call and is raised again by ``check``.
"""

import signal
import threading

from ._errors import check

__all__ = ["Interruptible"]


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

    def __enter__(self):
        # Only the main thread receives signals and may set handlers; a
        # handler the application installed itself is left alone (it runs
        # as usual, and an exception it raises in a callback stops the call).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, kind, value, traceback):
        if self._previous is not None:
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
                if self.interrupted or self.raised is not None:
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
