/* Tests for <ich/core.h>: version, status strings, per-thread last error,
 * log callback. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* ---- Version ------------------------------------------------------------ */

static void test_version(void **state)
{
    (void)state;
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", ICH_VERSION_MAJOR, ICH_VERSION_MINOR,
             ICH_VERSION_PATCH);
    const char *version = ich_version();
    assert_non_null(version);
    assert_string_equal(version, expected);
    assert_int_equal(ich_version_number(), ICH_VERSION_NUMBER);
    assert_int_equal(ICH_VERSION_NUMBER,
                     ICH_VERSION_MAJOR * 10000 + ICH_VERSION_MINOR * 100 + ICH_VERSION_PATCH);
    /* The static string is stable between calls. */
    assert_string_equal(ich_version(), version);
}

/* ---- Status strings ----------------------------------------------------- */

static void test_status_string(void **state)
{
    (void)state;
    static const struct {
        ich_status status;
        int value;
        const char *name;
    } cases[] = {
        {ICH_OK, 0, "ICH_OK"},
        {ICH_ERR_INVALID_ARGUMENT, 1, "ICH_ERR_INVALID_ARGUMENT"},
        {ICH_ERR_NO_MEMORY, 2, "ICH_ERR_NO_MEMORY"},
        {ICH_ERR_IO, 3, "ICH_ERR_IO"},
        {ICH_ERR_FORMAT, 4, "ICH_ERR_FORMAT"},
        {ICH_ERR_UNSUPPORTED, 5, "ICH_ERR_UNSUPPORTED"},
        {ICH_ERR_NOT_FOUND, 6, "ICH_ERR_NOT_FOUND"},
        {ICH_ERR_SHAPE, 7, "ICH_ERR_SHAPE"},
        {ICH_ERR_INTERNAL, 8, "ICH_ERR_INTERNAL"},
        {ICH_ERR_CANCELLED, 9, "ICH_ERR_CANCELLED"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal((int)cases[i].status, cases[i].value);
        const char *s = ich_status_string(cases[i].status);
        assert_non_null(s);
        assert_string_equal(s, cases[i].name);
    }
    const int unknown[] = {10, 11, 100, -1, 0x7fffffff};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = ich_status_string((ich_status)unknown[i]);
        assert_non_null(s);
        assert_string_equal(s, "ICH_ERR_UNKNOWN");
    }
}

/* ---- Last error --------------------------------------------------------- */

struct thread_result {
    char initial[512];     /* ich_last_error() when the thread starts */
    char after_fail[512];  /* after its own failing call */
    char after_clear[512]; /* after ich_clear_error() */
    int initial_null;
    ich_status status;
    int out_was_nulled;
};

static void copy_message(char *dst, size_t size, const char *msg, int *was_null)
{
    if (!msg) {
        if (was_null)
            *was_null = 1;
        dst[0] = '\0';
        return;
    }
    snprintf(dst, size, "%s", msg);
}

static void test_last_error_initially_empty(void **state)
{
    (void)state;
    /* Runs first: nothing has failed on the main thread yet. */
    const char *msg = ich_last_error();
    assert_non_null(msg);
    assert_string_equal(msg, "");
}

static void *fresh_thread_initial(void *arg)
{
    struct thread_result *r = arg;
    copy_message(r->initial, sizeof r->initial, ich_last_error(), &r->initial_null);
    return NULL;
}

static void test_last_error_empty_on_new_thread(void **state)
{
    (void)state;
    /* Make the main thread's message non-empty first: a new thread must
     * still start with "". */
    ich_dicom *d = NULL;
    assert_int_not_equal(ich_dicom_read("/nonexistent/main_thread.dcm", &d), ICH_OK);
    struct thread_result r;
    memset(&r, 0, sizeof r);
    strcpy(r.initial, "sentinel");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fresh_thread_initial, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.initial_null, 0);
    assert_string_equal(r.initial, "");
    ich_clear_error();
}

static void test_last_error_names_file(void **state)
{
    (void)state;
    ich_clear_error();
    assert_non_null(ich_last_error());
    assert_string_equal(ich_last_error(), "");

    ich_dicom *d = (ich_dicom *)(uintptr_t)0x1; /* must be set to NULL */
    ich_status st = ich_dicom_read("/nonexistent/x.dcm", &d);
    assert_int_equal(st, ICH_ERR_IO);
    assert_null(d);
    const char *msg = ich_last_error();
    assert_non_null(msg);
    assert_non_null(strstr(msg, "x.dcm"));

    /* A successful call leaves the message as it was. */
    char saved[512];
    snprintf(saved, sizeof saved, "%s", msg);
    float c = 0, w = 0;
    assert_int_equal(ich_window_preset("brain", &c, &w), ICH_OK);
    assert_string_equal(ich_last_error(), saved);
    assert_string_equal(ich_version(), ich_version()); /* harmless calls */
    assert_string_equal(ich_last_error(), saved);

    /* ich_clear_error() empties it. */
    ich_clear_error();
    assert_non_null(ich_last_error());
    assert_string_equal(ich_last_error(), "");
    /* Clearing twice is fine. */
    ich_clear_error();
    assert_string_equal(ich_last_error(), "");

    /* A later failure replaces the message. */
    st = ich_dicom_read("/nonexistent/second_name.dcm", &d);
    assert_int_equal(st, ICH_ERR_IO);
    assert_non_null(strstr(ich_last_error(), "second_name.dcm"));
    assert_null(strstr(ich_last_error(), "x.dcm"));
    ich_clear_error();
}

static void *failing_thread(void *arg)
{
    struct thread_result *r = arg;
    copy_message(r->initial, sizeof r->initial, ich_last_error(), &r->initial_null);
    ich_dicom *d = (ich_dicom *)(uintptr_t)0x1;
    r->status = ich_dicom_read("/nonexistent/other_thread_y.dcm", &d);
    r->out_was_nulled = d == NULL;
    copy_message(r->after_fail, sizeof r->after_fail, ich_last_error(), NULL);
    ich_clear_error();
    copy_message(r->after_clear, sizeof r->after_clear, ich_last_error(), NULL);
    return NULL;
}

static void test_last_error_per_thread(void **state)
{
    (void)state;
    ich_dicom *d = NULL;
    assert_int_equal(ich_dicom_read("/nonexistent/x.dcm", &d), ICH_ERR_IO);
    char before[512];
    snprintf(before, sizeof before, "%s", ich_last_error());
    assert_non_null(strstr(before, "x.dcm"));

    struct thread_result r[4];
    pthread_t t[4];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, failing_thread, &r[i]), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);

    for (int i = 0; i < 4; i++) {
        assert_string_equal(r[i].initial, "");
        assert_int_equal(r[i].status, ICH_ERR_IO);
        assert_true(r[i].out_was_nulled);
        assert_non_null(strstr(r[i].after_fail, "other_thread_y.dcm"));
        assert_null(strstr(r[i].after_fail, "x.dcm"));
        assert_string_equal(r[i].after_clear, "");
    }
    /* This thread's message is untouched by the other threads' failures and
     * by their ich_clear_error(). */
    assert_string_equal(ich_last_error(), before);
    ich_clear_error();
    assert_string_equal(ich_last_error(), "");
}

/* ---- Logging ------------------------------------------------------------ */

struct log_record {
    int calls;
    int bad_level;
    int bad_message;   /* NULL, empty, or ends with a newline */
    int below_minimum; /* a message below the installed minimum level */
    int min_level;
    void *user_seen;
    char last[512];
};

static void log_fn(ich_log_level level, const char *message, void *user)
{
    struct log_record *rec = user;
    rec->calls++;
    rec->user_seen = user;
    if ((int)level < ICH_LOG_DEBUG || (int)level > ICH_LOG_ERROR)
        rec->bad_level++;
    if ((int)level < rec->min_level)
        rec->below_minimum++;
    if (!message || !message[0] || message[strlen(message) - 1] == '\n')
        rec->bad_message++;
    if (message)
        snprintf(rec->last, sizeof rec->last, "%s", message);
}

/* Provoke a few failing calls from several parts of the library. */
static void provoke_failures(void)
{
    ich_dicom *d = NULL;
    (void)ich_dicom_read("/nonexistent/logged.dcm", &d);
    float c, w;
    (void)ich_window_preset("no-such-preset", &c, &w);
    uint8_t px[4] = {0};
    (void)ich_png_write("/nonexistent/dir/logged.png", px, 2, 2, 1);
}

static void test_log_callback(void **state)
{
    (void)state;
    struct log_record rec;

    /* Minimum level DEBUG: whatever the library logs for failures must be a
     * proper message with a valid level, and the user pointer is passed. */
    memset(&rec, 0, sizeof rec);
    rec.min_level = ICH_LOG_DEBUG;
    ich_set_log_callback(log_fn, &rec, ICH_LOG_DEBUG);
    provoke_failures();
    ich_set_log_callback(NULL, NULL, ICH_LOG_INFO);
    assert_int_equal(rec.bad_level, 0);
    assert_int_equal(rec.bad_message, 0);
    if (rec.calls > 0)
        assert_ptr_equal(rec.user_seen, &rec);
    else
        print_message("note: no public call logged anything at DEBUG level\n");
    int debug_calls = rec.calls;

    /* Minimum level ERROR: nothing below ERROR may reach the callback. */
    memset(&rec, 0, sizeof rec);
    rec.min_level = ICH_LOG_ERROR;
    ich_set_log_callback(log_fn, &rec, ICH_LOG_ERROR);
    provoke_failures();
    ich_set_log_callback(NULL, NULL, ICH_LOG_INFO);
    assert_int_equal(rec.below_minimum, 0);
    assert_int_equal(rec.bad_level, 0);
    assert_int_equal(rec.bad_message, 0);
    assert_true(rec.calls <= debug_calls);

    /* Removed: the callback is never called again. */
    memset(&rec, 0, sizeof rec);
    ich_set_log_callback(log_fn, &rec, ICH_LOG_DEBUG);
    ich_set_log_callback(NULL, NULL, ICH_LOG_DEBUG);
    provoke_failures();
    assert_int_equal(rec.calls, 0);

    /* Replacing one callback with another: only the new one is called. */
    struct log_record first, second;
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    ich_set_log_callback(log_fn, &first, ICH_LOG_DEBUG);
    ich_set_log_callback(log_fn, &second, ICH_LOG_DEBUG);
    provoke_failures();
    ich_set_log_callback(NULL, NULL, ICH_LOG_INFO);
    assert_int_equal(first.calls, 0);
    assert_int_equal(second.calls, debug_calls);
    if (second.calls > 0)
        assert_ptr_equal(second.user_seen, &second);
    ich_clear_error();
}

/* ich_set_threads is core's (declared in <ich/core.h>): the count reaches
 * the CPU backend, before and after the backend first starts. */
static void test_set_threads(void **state)
{
    (void)state;
    char text[512];
    ich_set_threads(3);
    assert_int_equal(ich_backend_describe("cpu", text, sizeof text), ICH_OK);
    assert_non_null(strstr(text, "cpu: 3 threads"));
    ich_set_threads(1);
    assert_int_equal(ich_backend_describe("cpu", text, sizeof text), ICH_OK);
    assert_non_null(strstr(text, "cpu: 1 threads"));
    ich_set_threads(0); /* back to one per CPU */
    assert_int_equal(ich_backend_describe("cpu", text, sizeof text), ICH_OK);
    assert_null(strstr(text, "cpu: 0 threads"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_status_string),
        cmocka_unit_test(test_last_error_initially_empty),
        cmocka_unit_test(test_last_error_empty_on_new_thread),
        cmocka_unit_test(test_last_error_names_file),
        cmocka_unit_test(test_last_error_per_thread),
        cmocka_unit_test(test_log_callback),
        cmocka_unit_test(test_set_threads),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
