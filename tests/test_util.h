/* Small helpers shared by the cmocka tests: temporary directories, file
 * reading/writing, directory listings. Header-only (static functions), so
 * each test executable stays one source file. */
#ifndef ICH_TEST_UTIL_H
#define ICH_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ich/core.h"

#if defined(__GNUC__)
#define TU_UNUSED __attribute__((unused))
#else
#define TU_UNUSED
#endif

/* Create a fresh directory under /tmp; returns a malloc'd path or NULL. */
static TU_UNUSED char *tu_mkdtemp(void)
{
    char *path = strdup("/tmp/ich_test_XXXXXX");
    if (!path)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

/* Remove a directory tree (files and sub-directories). */
static TU_UNUSED void tu_rmtree(const char *path)
{
    if (!path)
        return;
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
                continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
                tu_rmtree(child);
            else
                unlink(child);
        }
        closedir(dir);
    }
    rmdir(path);
}

/* Join dir and name into a buffer the caller provides; a path that does
 * not fit fails the test instead of being silently cut. */
static TU_UNUSED const char *tu_join(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    assert_true(n >= 0 && (size_t)n < size);
    return buf;
}

/* Number of entries in a directory (without . and ..), -1 if unreadable.
 * When `names` is not NULL, the names are written there separated by
 * spaces (truncated to names_size). */
static TU_UNUSED int tu_dir_count(const char *path, char *names, size_t names_size)
{
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    int count = 0;
    if (names && names_size)
        names[0] = '\0';
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        if (names && names_size) {
            size_t len = strlen(names);
            snprintf(names + len, names_size - len, "%s%s", len ? " " : "", entry->d_name);
        }
        count++;
    }
    closedir(dir);
    return count;
}

static TU_UNUSED int tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static TU_UNUSED long tu_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (long)st.st_size;
}

/* Read a whole file; returns malloc'd bytes (size in *size) or NULL. */
static TU_UNUSED uint8_t *tu_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    uint8_t *data = malloc(len > 0 ? (size_t)len : 1);
    if (!data) {
        fclose(f);
        return NULL;
    }
    if (len > 0 && fread(data, 1, (size_t)len, f) != (size_t)len) {
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *size = (size_t)len;
    return data;
}

/* Write bytes to a file; returns 0 on success. */
static TU_UNUSED int tu_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* A small deterministic generator (xorshift32), so tests are reproducible. */
/* libich's log messages, one a line, collected by tu_log_capture(): for
 * tests that check what a call reported. Worker threads log concurrently,
 * so appending takes a lock (without it two messages could land on the
 * same offset and one be lost). */
static TU_UNUSED char tu_log_text[8192];
static TU_UNUSED pthread_mutex_t tu_log_lock = PTHREAD_MUTEX_INITIALIZER;

static TU_UNUSED void tu_log_append(ich_log_level level, const char *message, void *user)
{
    (void)level;
    (void)user;
    pthread_mutex_lock(&tu_log_lock);
    size_t n = strlen(tu_log_text);
    snprintf(tu_log_text + n, sizeof tu_log_text - n, "%s\n", message);
    pthread_mutex_unlock(&tu_log_lock);
}

/* Clear tu_log_text and collect the messages of `level` and above into it. */
static TU_UNUSED void tu_log_capture(ich_log_level level)
{
    tu_log_text[0] = '\0';
    ich_set_log_callback(tu_log_append, NULL, level);
}

static TU_UNUSED uint32_t tu_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* ICH_TEST_FILTER=pattern runs only the matching tests (cmocka's filter,
 * '*' and '?' wildcards): handy when one test needs a debugger. Call after
 * including <cmocka.h>. */
#define TU_APPLY_FILTER()                                   \
    do {                                                    \
        const char *tu_filter_ = getenv("ICH_TEST_FILTER"); \
        if (tu_filter_ && tu_filter_[0])                    \
            cmocka_set_test_filter(tu_filter_);             \
    } while (0)

/* cmocka fixtures: a fresh temporary directory in *state for each test,
 * removed afterwards along with the thread's last error. */
static TU_UNUSED int tu_setup_tmpdir(void **state)
{
    char *dir = tu_mkdtemp();
    if (!dir)
        return -1;
    *state = dir;
    return 0;
}

static TU_UNUSED int tu_teardown_tmpdir(void **state)
{
    char *dir = *state;
    tu_rmtree(dir);
    free(dir);
    ich_clear_error();
    return 0;
}

#endif /* ICH_TEST_UTIL_H */
