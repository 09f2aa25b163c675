/* Internal: setting the thread's last error, logging, and small helpers. */
#ifndef ICH_INTERNAL_ERROR_H
#define ICH_INTERNAL_ERROR_H

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ICH_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define ICH_PRINTF(fmt_index, first_arg)
#endif

/* Record `status` and a printf-style message as the calling thread's last
 * error, and log it at ICH_LOG_DEBUG. Returns `status` so callers can write
 * `return ich_fail(ICH_ERR_IO, "%s: cannot open", path);`. */
ich_status ich_fail(ich_status status, const char *fmt, ...) ICH_PRINTF(2, 3);

/* ICH_ERR_CANCELLED ("<what>: cancelled") when the calling thread's cancel
 * check (ich_set_cancel_check()) asks to stop, else ICH_OK. */
ich_status ich_check_cancel(const char *what);

/* For ich_parallel_for() jobs without a caller's progress callback: an
 * ich_progress_fn that reports nothing and stops the job when the calling
 * thread's cancel check asks, or NULL when the thread has none (the job
 * then runs without a watcher, as before). */
ich_progress_fn ich_cancel_progress(void);

/* Send a printf-style message to the log callback when one is installed and
 * `level` reaches its minimum level. */
void ich_log(ich_log_level level, const char *fmt, ...) ICH_PRINTF(2, 3);

/* Non-zero: ich_log() drops the calling thread's messages until called
 * with 0. The ranks of a sharded job other than rank 0 mute the steps
 * every rank repeats (the folder walk, opening the label table), so that
 * each skipped entry is reported once, as by a single process. */
void ich_log_mute_thread(int muted);

#ifdef __cplusplus
}
#endif
#endif
