/* Version, status names and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"

#define ICH_STR2(x) #x
#define ICH_STR(x) ICH_STR2(x)

const char *ich_version(void)
{
    return ICH_STR(ICH_VERSION_MAJOR) "." ICH_STR(ICH_VERSION_MINOR) "." ICH_STR(ICH_VERSION_PATCH);
}

int ich_version_number(void) { return ICH_VERSION_NUMBER; }

const char *ich_status_string(ich_status status)
{
    switch (status) {
    case ICH_OK: return "ICH_OK";
    case ICH_ERR_INVALID_ARGUMENT: return "ICH_ERR_INVALID_ARGUMENT";
    case ICH_ERR_NO_MEMORY: return "ICH_ERR_NO_MEMORY";
    case ICH_ERR_IO: return "ICH_ERR_IO";
    case ICH_ERR_FORMAT: return "ICH_ERR_FORMAT";
    case ICH_ERR_UNSUPPORTED: return "ICH_ERR_UNSUPPORTED";
    case ICH_ERR_NOT_FOUND: return "ICH_ERR_NOT_FOUND";
    case ICH_ERR_SHAPE: return "ICH_ERR_SHAPE";
    case ICH_ERR_INTERNAL: return "ICH_ERR_INTERNAL";
    case ICH_ERR_CANCELLED: return "ICH_ERR_CANCELLED";
    }
    return "ICH_ERR_UNKNOWN";
}

/* One message buffer per thread: no locking, no allocation, and a failure
 * on one thread never overwrites another thread's message. */
static _Thread_local char last_error[1024];

const char *ich_last_error(void) { return last_error; }

void ich_clear_error(void) { last_error[0] = '\0'; }

ich_status ich_fail(ich_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    ich_log(ICH_LOG_DEBUG, "%s: %s", ich_status_string(status), last_error);
    return status;
}

void ich_free(void *pointer) { free(pointer); }

/* The calling thread's cancel check (ich_set_cancel_check()). */
static _Thread_local ich_cancel_fn cancel_fn;
static _Thread_local void *cancel_user;

void ich_set_cancel_check(ich_cancel_fn fn, void *user)
{
    cancel_fn = fn;
    cancel_user = fn ? user : NULL;
}

static int cancel_only(void *user, int64_t done, int64_t total, const char *what)
{
    (void)user, (void)done, (void)total, (void)what;
    return cancel_fn && cancel_fn(cancel_user);
}

ich_progress_fn ich_cancel_progress(void) { return cancel_fn ? cancel_only : NULL; }

ich_status ich_check_cancel(const char *what)
{
    if (cancel_fn && cancel_fn(cancel_user))
        return ich_fail(ICH_ERR_CANCELLED, "%s: cancelled", what);
    return ICH_OK;
}
