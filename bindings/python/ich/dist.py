"""Distributed runs: this process's place among several ranks that an MPI
launcher started (libich's ``ich/dist.h``).

Under ``mpirun -np N python3 script.py`` (or ``srun``) every process runs
the script; libich's communicator (the ``libich-mpi.so`` plugin, loaded only
then) connects them, and :func:`ich.train` trains data-parallel: each rank
a share of every batch, the same weights on every rank, rank 0 alone
writing checkpoints. A script uses :func:`rank` to do the rest once::

    import ich
    print("rank", ich.dist.rank(), "of", ich.dist.size(), "-", ich.dist.describe())
    ...
    history = ich.train(model, opt, train_ds, val_ds, epochs=5, checkpoint_dir="run")
    if ich.dist.rank() == 0:
        model.save("final.safetensors")

A process launched as one of several whose communicator cannot start (no
plugin, another MPI than the launcher's) raises here and in :func:`ich.train`
rather than running alone. ``ICH_DIST=off`` makes every process a single
one; ``ICH_DIST_TIMEOUT`` (seconds, default 300) bounds how long a rank
waits for the others before every rank ends with a message.

An exception that ends a rank's script ends every rank (importing ``ich``
wraps ``sys.excepthook`` to call :func:`mark_failed`): the others may be
waiting for it in a collective operation. A script that replaces
``sys.excepthook`` should call :func:`mark_failed` itself.
"""

import ctypes
import sys

from ._errors import check
from ._lib import c_status, lib, _declare

__all__ = ["rank", "size", "describe", "barrier", "mark_failed"]

_declare("ich_dist_rank", ctypes.c_int32)
_declare("ich_dist_size", ctypes.c_int32)
_declare("ich_dist_describe", c_status, ctypes.c_char_p, ctypes.c_size_t)
_declare("ich_dist_barrier", c_status)
_declare("ich_dist_mark_failed", None)


def describe():
    """One line on the communicator: ``"single process (no MPI launcher
    seen)"`` or ``"mpi: rank R of N, Open MPI ..., /path/libich-mpi.so"``.
    Starts it if needed; raises when it cannot start (launched as several
    ranks, but the plugin is missing or cannot start), saying why."""
    text = ctypes.create_string_buffer(8192)
    check(lib.ich_dist_describe(text, len(text)))
    return text.value.decode("utf-8", "replace")


def _checked(value):
    if value < 0:
        describe()  # raises the failure with its status and message
    return value


def rank():
    """This process's rank, 0 .. size() - 1 (0 for a single process).
    Raises as :func:`describe` when the communicator cannot start."""
    return _checked(lib.ich_dist_rank())


def size():
    """The number of ranks (1 for a single process). Raises as
    :func:`describe` when the communicator cannot start."""
    return _checked(lib.ich_dist_size())


def barrier():
    """Wait until every rank has called it (e.g. rank 0 writes files the
    others then read). Every rank must call it; at once in a single
    process. Raises as :func:`describe` when the communicator cannot
    start."""
    check(lib.ich_dist_barrier())


def mark_failed():
    """This rank failed and is about to end: at its exit every rank of the
    run ends (MPI_Abort) instead of this one waiting for them in
    MPI_Finalize. Nothing in a single process or before the communicator
    started. :func:`ich.train` does it itself when it fails."""
    lib.ich_dist_mark_failed()


def _install_excepthook():
    previous = sys.excepthook

    def end_every_rank(kind, value, traceback):
        mark_failed()
        previous(kind, value, traceback)

    sys.excepthook = end_every_rank


_install_excepthook()
