/*
 * libich core: version, status codes, error messages, logging and threads.
 *
 * Every fallible libich call returns an ich_status; ICH_OK (0) means success
 * and results come back through out-parameters. When a call fails,
 * ich_last_error() returns a message for the calling thread that says what
 * failed and where (file name, CSV line, ...). The library never prints,
 * aborts or exits: diagnostics reach the application only through the status,
 * the last-error message and the optional log callback.
 *
 * ABI. libich keeps its binary interface stable within a SONAME
 * (libich.so.0): a program built against older headers runs with a newer
 * library. Every public struct begins with `size_t size`, set to the sizeof
 * the program was compiled with; fields are only ever appended, and each
 * struct's first version is written beside it (that size is the smallest
 * the library accepts). One rule in both directions: a struct passed in is
 * read only as far as its `size` reaches (the fields past it keep their
 * defaults), a struct passed out is written only as far as
 * min(size, the library's sizeof), and `size` then says how much was
 * written. The _init functions are macros that set `size` to the caller's
 * sizeof first (ICH_SIZED), so they too write no further. Structs embedded
 * by value in another (ich_metrics_at) keep their layout for good. Only the
 * functions declared ICH_API here leave libich.so; scripts/abi.sh compares
 * each build with the committed baseline (abi/libich.so.0.abi).
 *
 * This header is included by <ich/ich.h>; include that one.
 */
#ifndef ICH_CORE_H
#define ICH_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ICH_BUILDING_LIBRARY) && defined(__GNUC__)
#define ICH_API __attribute__((visibility("default")))
#else
#define ICH_API
#endif

/** Used by the _init macros: sets the struct's `size` to the caller's
 *  sizeof and passes the pointer on (see "ABI" above). Evaluates `s`
 *  twice. */
#define ICH_SIZED(s) ((s)->size = sizeof *(s), (s))

/* ---- Version ----------------------------------------------------------- */

#define ICH_VERSION_MAJOR 0
#define ICH_VERSION_MINOR 1
#define ICH_VERSION_PATCH 0
/** The version as one number: major * 10000 + minor * 100 + patch. */
#define ICH_VERSION_NUMBER \
    (ICH_VERSION_MAJOR * 10000 + ICH_VERSION_MINOR * 100 + ICH_VERSION_PATCH)

/** Version of the loaded library as "major.minor.patch" (static string).
 *  Compare with ICH_VERSION_* to detect a header/library mismatch. */
ICH_API const char *ich_version(void);

/** Version of the loaded library as ICH_VERSION_NUMBER computes it. */
ICH_API int ich_version_number(void);

/* ---- Status codes ------------------------------------------------------ */

/** Result of every fallible call. Values are stable across versions. */
typedef enum ich_status {
    ICH_OK = 0,
    ICH_ERR_INVALID_ARGUMENT = 1, /**< NULL pointer, bad size, bad option */
    ICH_ERR_NO_MEMORY = 2,        /**< an allocation failed */
    ICH_ERR_IO = 3,               /**< open/read/write/rename failed */
    ICH_ERR_FORMAT = 4,           /**< malformed input: not DICOM, truncated, bad CSV */
    ICH_ERR_UNSUPPORTED = 5,      /**< valid input libich does not handle (colour, multi-frame) */
    ICH_ERR_NOT_FOUND = 6,        /**< a named item (file, preset, column) does not exist */
    ICH_ERR_SHAPE = 7,            /**< buffer or tensor has the wrong size or shape */
    ICH_ERR_INTERNAL = 8,         /**< a bug in libich: please report it */
    ICH_ERR_CANCELLED = 9         /**< a progress or file callback asked to stop */
    /* New codes are appended here; existing values never change. */
} ich_status;

/** Short constant name of a status ("ICH_ERR_FORMAT"); "ICH_ERR_UNKNOWN" for
 *  values not listed above. Never NULL. */
ICH_API const char *ich_status_string(ich_status status);

/** The calling thread's message for the last failed call: what failed and
 *  where, e.g. "scan/1.dcm: truncated file: pixel data has 8130 of 8192
 *  bytes". Valid until the next libich call on this thread. An empty string
 *  if nothing has failed on this thread; never NULL. Successful calls leave
 *  the message as it was. */
ICH_API const char *ich_last_error(void);

/** Forget the calling thread's last error message. */
ICH_API void ich_clear_error(void);

/* ---- Logging ----------------------------------------------------------- */

typedef enum ich_log_level {
    ICH_LOG_DEBUG = 0,
    ICH_LOG_INFO = 1,
    ICH_LOG_WARNING = 2,
    ICH_LOG_ERROR = 3
} ich_log_level;

/** Log callback: receives a level, a NUL-terminated message (no trailing
 *  newline) and the user pointer given to ich_set_log_callback(). It may be
 *  called from any thread that runs libich code, so it must be thread-safe. */
typedef void (*ich_log_fn)(ich_log_level level, const char *message, void *user);

/** Install the process-wide log callback (NULL removes it: libich is then
 *  silent, the default) and the lowest level passed to it. Messages below
 *  min_level are dropped. Not to be called while other threads run libich. */
ICH_API void ich_set_log_callback(ich_log_fn fn, void *user, ich_log_level min_level);

/* ---- Progress and memory ----------------------------------------------- */

/** Progress callback for long work (writing a dataset, copying files,
 *  augmenting a folder): `done` of `total` items are finished; `what` names
 *  the step ("phantom", "select", ...). Called from the thread that made the
 *  libich call, at most a few times per second and once at the end (done ==
 *  total). Return 0 to go on, non-zero to cancel: the call then stops soon
 *  (no new item starts; those under way finish) and returns
 *  ICH_ERR_CANCELLED, having removed nothing it finished. A program that
 *  catches SIGINT can set a flag in its handler and return it here, so
 *  Ctrl-C stops the work cleanly. */
typedef int (*ich_progress_fn)(void *user, int64_t done, int64_t total, const char *what);

/** Cancel check: returns non-zero when the work should stop. */
typedef int (*ich_cancel_fn)(void *user);

/** Install `fn` (NULL removes it) as the calling thread's cancel check.
 *  Long steps too big for one progress report consult it between their
 *  parts: ich_model_forward(), ich_model_backward() and ich_model_predict()
 *  (and so ich_train(), ich_evaluate() and ich_evaluate_report()) after
 *  each layer, and the file jobs without a progress callback
 *  (ich_labels_groups_from_dicom(), reading a dataset's DICOM headers,
 *  locating ich_labels_select_files()'s images) a few times a second, on
 *  the calling thread. When it returns non-zero the call stops and returns
 *  ICH_ERR_CANCELLED. A network's large first layers can
 *  take seconds on a CPU, so this lets Ctrl-C (a flag set by a SIGINT
 *  handler) stop training within a layer's time, not a batch's. Each
 *  thread has its own check; other threads are not affected. */
ICH_API void ich_set_cancel_check(ich_cancel_fn fn, void *user);

/** Free memory that a libich call returned to the caller (documented where
 *  it happens, e.g. ich_png_read()). NULL is a no-op. */
ICH_API void ich_free(void *pointer);

/* ---- Threads ----------------------------------------------------------- */

/** Threads the compute kernels use (0: one per CPU the process may run
 *  on, its affinity mask: the default; under mpirun the cores a rank is
 *  bound to): the CPU backend's layers (oneDNN, OpenBLAS) and the
 *  optimizers' element loops.
 *  Applies to every model in the process. Steps with a `threads` option of
 *  their own (phantom, select, augment, dataset workers) are not changed. */
ICH_API void ich_set_threads(int32_t threads);

#ifdef __cplusplus
}
#endif
#endif /* ICH_CORE_H */
