/*
 * Shared by the example programs: a clock, a progress bar for the
 * library's progress callback (ich_progress_fn in <ich/core.h>), and
 * recognising DICOM files in a folder.
 *
 *   progress_bar bar = {now(), "slices"};
 *   options.progress = show_progress;     // libich calls it a few times a second
 *   options.progress_user = &bar;
 */
#ifndef ICH_EXAMPLES_COMMON_H
#define ICH_EXAMPLES_COMMON_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Seconds on a monotonic clock. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct progress_bar {
    double start; /* now() when the work began */
    const char *unit; /* what is counted: "slices", "files", ... */
} progress_bar;

/* Draws "what [#####     ] done/total  rate unit/s  ETA s" on stderr,
 * over the previous bar; print a newline when the work is done. */
static inline int show_progress(void *user, int64_t done, int64_t total, const char *what)
{
    const progress_bar *bar = user;
    double elapsed = now() - bar->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    int width = 30, filled = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\r%s [%.*s%*s] %" PRId64 "/%" PRId64 "  %.0f %s/s  ETA %.0fs ", what,
            filled, "##############################", width - filled, "", done, total, rate,
            bar->unit, rate > 0 ? (double)(total - done) / rate : 0.0);
    return 0;
}

static inline int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcasecmp(name + n - k, suffix) == 0;
}

/* DICOM files carry "DICM" after a 128-byte preamble; RSNA's are *.dcm. */
static inline int looks_like_dicom(const char *path, const char *name)
{
    if (has_suffix(name, ".dcm") || has_suffix(name, ".dicom"))
        return 1;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    int ok = f && fseek(f, 128, SEEK_SET) == 0 && fread(magic, 1, 4, f) == 4 &&
             memcmp(magic, "DICM", 4) == 0;
    if (f)
        fclose(f);
    return ok;
}

/* Choose where the network runs (--backend auto|cpu|cuda; NULL: the
 * ICH_BACKEND environment variable, else auto) and say which on stderr
 * unless quiet. 0 on success, else prints why and returns 1. */
static inline int use_backend(const char *program, const char *name, int quiet)
{
    char text[512];
    if ((name && ich_backend_select(name) != ICH_OK) ||
        ich_backend_describe(NULL, text, sizeof text) != ICH_OK) {
        fprintf(stderr, "%s: %s\n", program, ich_last_error());
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "%s: running on %s\n", program, text);
    return 0;
}

#endif
