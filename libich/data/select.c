/* Selecting files: copy or link the images of a label table from a source
 * tree into a working folder, in parallel and verified; and reading the
 * patients (groups) of a table from its DICOM files.
 *
 * Every target is first written under a temporary name beside it and only
 * renamed into place once it has been checked against the source, so a
 * crash, a full disk or a cancel never leaves a half-copied image under the
 * target's name, and no temporary file is left behind by a failed item. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/options.h"
#include "core/fileutil.h"
#include "core/parallel.h"
#include "core/paths.h"
#include "ich/dicom.h"
#include "ich/labels.h"

/* How many missing images or failed files are named in the log before the
 * rest are only counted. */
#define LOG_NAMED 20

enum row_state { ROW_PENDING = 0, ROW_PLACED, ROW_MISSING, ROW_FAILED };

/* ---- Options ------------------------------------------------------------ */

void (ich_select_options_init)(ich_select_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_select_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->mode = ICH_SELECT_COPY;
    options->threads = 0;
    options->extension = ".dcm";
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_select_options, progress_user));
}

/* The caller's options over the defaults; fields past options->size (from
 * a program built against an older header) keep their defaults. */
static ich_status read_options(const ich_select_options *in, ich_select_options *out)
{
    ich_select_options_init(out);
    ich_status st = ich_options_merge(out, sizeof *out, in,
                                      ICH_OPTIONS_V1_SIZE(ich_select_options, progress_user),
                                      "ich_labels_select_files");
    if (st != ICH_OK)
        return st;
    if (out->mode < ICH_SELECT_COPY || out->mode > ICH_SELECT_SYMLINK)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_labels_select_files: mode %d is not copy (0), hardlink (1) or "
                        "symlink (2)",
                        (int)out->mode);
    if (!out->extension)
        out->extension = ".dcm";
    if (strchr(out->extension, '/'))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_labels_select_files: extension \"%.64s\" holds a '/'",
                        out->extension);
    return ICH_OK;
}

/* ---- Small file helpers -------------------------------------------------- */

/* "<dir>/<id><ext>" in new memory, or NULL. */
static char *image_path(const char *dir, const char *id, const char *ext)
{
    size_t n = strlen(dir) + strlen(id) + strlen(ext) + 2;
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s/%s%s", dir, id, ext);
    return path;
}

/* read() that retries on EINTR and fills the buffer unless the file ends. */
static ssize_t read_full(int fd, unsigned char *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int write_full(int fd, const unsigned char *buf, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, buf, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        size -= (size_t)n;
    }
    return 0;
}

#define CHUNK (256 * 1024)

/* 1 when the files at a and b hold the same bytes, 0 when they differ,
 * -1 (errno set) when either cannot be read. */
static int same_bytes(const char *a, const char *b)
{
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    unsigned char *buf = malloc(2 * (size_t)CHUNK);
    int result = -1, saved = 0;
    struct stat sa, sb;
    if (fa < 0 || fb < 0 || !buf || fstat(fa, &sa) != 0 || fstat(fb, &sb) != 0) {
        saved = buf ? errno : ENOMEM;
        goto done;
    }
    if (sa.st_size != sb.st_size) {
        result = 0;
        goto done;
    }
    for (;;) {
        ssize_t na = read_full(fa, buf, CHUNK), nb = read_full(fb, buf + CHUNK, CHUNK);
        if (na < 0 || nb < 0) {
            saved = errno;
            break;
        }
        if (na != nb || memcmp(buf, buf + CHUNK, (size_t)na) != 0) {
            result = 0;
            break;
        }
        if (na == 0) {
            result = 1;
            break;
        }
    }
done:
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    free(buf);
    errno = saved;
    return result;
}

/* A fresh name beside `target` for the file being written: pid and a
 * process-wide counter keep concurrent calls and threads apart. */
static char *temp_name(const char *target)
{
    static atomic_ullong counter;
    size_t n = strlen(target) + 48;
    char *tmp = malloc(n);
    if (tmp)
        snprintf(tmp, n, "%s.tmp-%ld-%llu", target, (long)getpid(),
                 (unsigned long long)atomic_fetch_add(&counter, 1));
    return tmp;
}

/* Copy the bytes of src into the new file `tmp`. Returns a status; the
 * caller removes tmp on failure. */
static ich_status copy_bytes(const char *src, const char *tmp, const char *target)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ich_fail(ICH_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (out < 0) {
        int err = errno;
        close(in);
        return ich_fail(ICH_ERR_IO, "%s: cannot create file: %s", target, strerror(err));
    }
    unsigned char *buf = malloc(CHUNK);
    const char *step = buf ? NULL : "out of memory";
    int err = buf ? 0 : ENOMEM;
    while (!step) {
        ssize_t n = read_full(in, buf, CHUNK);
        if (n < 0) {
            step = "cannot read the source", err = errno;
        } else if (n == 0) {
            break;
        } else if (write_full(out, buf, (size_t)n) != 0) {
            step = "cannot write", err = errno;
        }
    }
    free(buf);
    close(in);
    if (close(out) != 0 && !step)
        step = "cannot close", err = errno;
    if (step)
        return ich_fail(ICH_ERR_IO, "%s: %s (copying %s): %s", target, step, src, strerror(err));
    return ICH_OK;
}

/* Rename tmp over target; tmp is gone afterwards whatever happens. (When
 * both already name the same inode, rename() succeeds and does nothing.) */
static ich_status put_in_place(const char *tmp, const char *target)
{
    ich_status status = ICH_OK;
    if (rename(tmp, target) != 0)
        status = ich_fail(ICH_ERR_IO, "%s: cannot rename temporary file into place: %s", target,
                          strerror(errno));
    struct stat st;
    if (lstat(tmp, &st) == 0)
        unlink(tmp);
    return status;
}

/* ---- Placing one file ---------------------------------------------------- */

static ich_status copy_into(const char *src, const char *target)
{
    struct stat st;
    if (lstat(target, &st) == 0 && S_ISREG(st.st_mode) && same_bytes(src, target) == 1)
        return ICH_OK; /* already there */
    char *tmp = temp_name(target);
    if (!tmp)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", target);
    ich_status status = copy_bytes(src, tmp, target);
    if (status == ICH_OK) {
        int same = same_bytes(src, tmp);
        if (same != 1)
            status = ich_fail(ICH_ERR_IO, "%s: the copy %s %s", target,
                              same == 0 ? "differs from" : "cannot be compared with", src);
    }
    if (status == ICH_OK)
        status = put_in_place(tmp, target);
    else
        unlink(tmp);
    free(tmp);
    return status;
}

static int same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* link() errors after which a copy can still succeed: another file
 * system, no hard links there, too many links, or the kernel's
 * protected_hardlinks refusing a file we do not own. */
static int link_unsupported(int err)
{
    return err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP ||
           err == EOPNOTSUPP || err == ENOSYS;
}

static ich_status hardlink_into(const char *src, const char *target)
{
    struct stat s, t;
    if (stat(src, &s) != 0)
        return ich_fail(ICH_ERR_IO, "%s: cannot stat: %s", src, strerror(errno));
    if (lstat(target, &t) == 0 && S_ISREG(t.st_mode) &&
        (same_inode(&s, &t) || same_bytes(src, target) == 1))
        return ICH_OK; /* already there */
    char *tmp = temp_name(target);
    if (!tmp)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", target);
    ich_status status = ICH_OK;
    if (link(src, tmp) != 0) {
        int err = errno;
        free(tmp);
        if (link_unsupported(err)) {
            ich_log(ICH_LOG_DEBUG, "%s: cannot hard-link (%s): copying instead", target,
                    strerror(err));
            return copy_into(src, target);
        }
        return ich_fail(ICH_ERR_IO, "%s: cannot hard-link to %s: %s", target, src, strerror(err));
    }
    if (lstat(tmp, &t) != 0 || !same_inode(&s, &t))
        status = ich_fail(ICH_ERR_IO, "%s: the hard link is not the file %s", target, src);
    if (status == ICH_OK)
        status = put_in_place(tmp, target);
    else
        unlink(tmp);
    free(tmp);
    return status;
}

/* 1 when `link` is a symbolic link whose text is `want`. */
static int links_to(const char *link, const char *want)
{
    size_t n = strlen(want);
    char *buf = malloc(n + 2);
    if (!buf)
        return 0;
    ssize_t got = readlink(link, buf, n + 2);
    int same = got == (ssize_t)n && memcmp(buf, want, n) == 0;
    free(buf);
    return same;
}

static ich_status symlink_into(const char *src, const char *target)
{
    char *absolute = realpath(src, NULL);
    if (!absolute)
        return ich_fail(ICH_ERR_IO, "%s: cannot resolve: %s", src, strerror(errno));
    ich_status status = ICH_OK;
    char *tmp = NULL;
    struct stat s, t;
    if (stat(absolute, &s) != 0) {
        status = ich_fail(ICH_ERR_IO, "%s: cannot stat: %s", src, strerror(errno));
    } else if (links_to(target, absolute)) {
        /* already there */
    } else if (lstat(target, &t) == 0 && S_ISREG(t.st_mode) && same_inode(&s, &t)) {
        /* the target is the source itself (dst_dir is src_dir, or a hard
         * link to it): replacing it by a link to itself would lose it */
    } else if (!(tmp = temp_name(target))) {
        status = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", target);
    } else if (symlink(absolute, tmp) != 0) {
        status = ich_fail(ICH_ERR_IO, "%s: cannot create symbolic link: %s", target,
                          strerror(errno));
    } else {
        if (!links_to(tmp, absolute) || stat(tmp, &t) != 0 || !same_inode(&s, &t))
            status = ich_fail(ICH_ERR_IO, "%s: the symbolic link does not reach %s", target,
                              absolute);
        if (status == ICH_OK)
            status = put_in_place(tmp, target);
        else
            unlink(tmp);
    }
    free(tmp);
    free(absolute);
    return status;
}

/* ---- Indexing the source tree ------------------------------------------- */

/* One file of the source tree: its path and, inside it, its name. */
typedef struct tree_file {
    char *path;
    const char *name;
} tree_file;

typedef struct tree_index {
    tree_file *files;
    size_t count, capacity;
    int failed; /* out of memory */
} tree_index;

static void index_add(tree_index *index, char *path, size_t name_offset)
{
    if (index->count == index->capacity) {
        size_t capacity = index->capacity ? 2 * index->capacity : 1024;
        tree_file *files = realloc(index->files, capacity * sizeof *files);
        if (!files) {
            free(path);
            index->failed = 1;
            return;
        }
        index->files = files;
        index->capacity = capacity;
    }
    index->files[index->count++] = (tree_file){path, path + name_offset};
}

/* ich_walk()'s callback: one file of the source tree into the index. */
static int index_file(void *user, const char *path, const char *relative, const char *skipped)
{
    (void)relative;
    tree_index *index = user;
    if (skipped) {
        ich_log(ICH_LOG_WARNING, "select: %s: %s: skipped", path, skipped);
        return 0;
    }
    char *copy = strdup(path);
    const char *slash = strrchr(path, '/');
    if (copy)
        index_add(index, copy, slash ? (size_t)(slash + 1 - path) : 0);
    if (!copy)
        index->failed = 1; /* out of memory, not a cancel: the caller reports it */
    return index->failed;
}

static int by_name_then_path(const void *a, const void *b)
{
    const tree_file *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->path, y->path);
}

static void index_free(tree_index *index)
{
    for (size_t i = 0; i < index->count; i++)
        free(index->files[i].path);
    free(index->files);
}

/* The files named `name` form a run in the sorted index: its first. */
static size_t index_lower_bound(const tree_index *index, const char *name)
{
    size_t lo = 0, hi = index->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(index->files[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* 1 when `path` ends with "/<relative>". */
static int ends_with_component_path(const char *path, const char *relative)
{
    size_t n = strlen(path), k = strlen(relative);
    return n > k && path[n - k - 1] == '/' && strcmp(path + n - k, relative) == 0;
}

/* The source of `id` found by its file name anywhere in the tree, in new
 * memory; NULL when absent (or out of memory: *oom set). An ID with
 * folders ("P1/scan/IM4") must match the end of the path, not just the
 * file name. When several files match, the first path in sort order wins
 * and a warning says so. */
static char *index_find(const tree_index *index, const char *id, const char *ext, int *oom)
{
    const char *base = strrchr(id, '/');
    base = base ? base + 1 : id;
    char *name = image_path("", base, ext), *relative = image_path("", id, ext);
    char *found = NULL;
    if (!name || !relative) {
        *oom = 1;
        goto done;
    }
    const char *want_name = name + 1, *want_relative = relative + 1; /* skip the '/' */
    size_t matches = 0;
    for (size_t i = index_lower_bound(index, want_name);
         i < index->count && strcmp(index->files[i].name, want_name) == 0; i++) {
        if (!ends_with_component_path(index->files[i].path, want_relative))
            continue;
        if (matches++ == 0 && !(found = strdup(index->files[i].path))) {
            *oom = 1;
            goto done;
        }
    }
    if (matches > 1)
        ich_log(ICH_LOG_WARNING, "%s: %zu files named %s in the source tree; using %s", id,
                matches, want_relative, found);
done:
    free(name);
    free(relative);
    return found;
}

/* ---- The selection ------------------------------------------------------- */

typedef struct select_job {
    const ich_labels *labels;
    const ich_select_options *options;
    const char *src_dir, *dst_dir;
    char **sources;        /* per row: the source file, NULL while not found */
    unsigned char *states; /* per row: enum row_state */
    int64_t *todo;         /* rows to place, in table order */
    atomic_llong logged_failures;
} select_job;

/* A failed item is named in the log while few have failed. */
static void log_failure(select_job *job, const char *id, int64_t row)
{
    if (atomic_fetch_add(&job->logged_failures, 1) < LOG_NAMED)
        ich_log(ICH_LOG_WARNING, "select: %s (row %lld) failed: %s", id, (long long)row + 1,
                ich_last_error());
}

/* Pass 1: is the image at its direct path src_dir/<id><ext>? */
static ich_status locate_item(void *context, int64_t row, int worker)
{
    (void)worker;
    select_job *job = context;
    const char *id = ich_labels_id(job->labels, row);
    char *path = NULL;
    ich_status status = ich_id_path(job->src_dir, id, job->options->extension, 0, &path);
    if (status != ICH_OK) {
        job->states[row] = ROW_FAILED;
        log_failure(job, id, row);
        return status;
    }
    if (ich_is_regular_file(path))
        job->sources[row] = path;
    else
        free(path);
    return ICH_OK;
}

/* Pass 2: put one found image into dst_dir. */
static ich_status place_item(void *context, int64_t index, int worker)
{
    (void)worker;
    select_job *job = context;
    int64_t row = job->todo[index];
    const char *id = ich_labels_id(job->labels, row);
    const char *src = job->sources[row];
    char *target = NULL;
    ich_status status = ich_id_path(job->dst_dir, id, job->options->extension, 0, &target);
    if (status == ICH_OK)
        status = ich_make_parent_dirs(target);
    if (status == ICH_OK) {
        switch (job->options->mode) {
        case ICH_SELECT_HARDLINK: status = hardlink_into(src, target); break;
        case ICH_SELECT_SYMLINK: status = symlink_into(src, target); break;
        default: status = copy_into(src, target); break;
        }
    }
    free(target);
    job->states[row] = status == ICH_OK ? ROW_PLACED : ROW_FAILED;
    if (status != ICH_OK)
        log_failure(job, id, row);
    return status;
}

/* Find by name, in a one-time index of the tree, the images that are not at
 * their direct path; the rest are missing. */
static ich_status find_the_rest(select_job *job, int64_t rows)
{
    int64_t lost = 0;
    for (int64_t r = 0; r < rows; r++)
        lost += job->states[r] == ROW_PENDING && !job->sources[r];
    if (lost == 0)
        return ICH_OK;
    ich_log(ICH_LOG_INFO, "select: %lld images not at %s/<id>%s: indexing the tree",
            (long long)lost, job->src_dir, job->options->extension);
    /* Every file once (hidden ones too), symbolic links followed without
     * loops, the destination folder left out when it lies inside the tree. */
    tree_index index = {0};
    struct stat dst;
    ich_walk_config walk = {1, stat(job->dst_dir, &dst) == 0 ? &dst : NULL};
    ich_status status = ich_walk(job->src_dir, &walk, index_file, &index, NULL);
    if (status != ICH_OK && !index.failed) {
        index_free(&index);
        return status;
    }
    int oom = index.failed;
    if (!oom)
        qsort(index.files, index.count, sizeof *index.files, by_name_then_path);
    for (int64_t r = 0; r < rows && !oom; r++)
        if (job->states[r] == ROW_PENDING && !job->sources[r])
            job->sources[r] =
                index_find(&index, ich_labels_id(job->labels, r), job->options->extension, &oom);
    index_free(&index);
    if (oom)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory indexing the folder",
                        job->src_dir);
    return ICH_OK;
}

/* Mark and log the images found nowhere: the first few by name. */
static int64_t report_missing(select_job *job, int64_t rows)
{
    int64_t missing = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (job->states[r] != ROW_PENDING || job->sources[r])
            continue;
        job->states[r] = ROW_MISSING;
        if (missing++ < LOG_NAMED)
            ich_log(ICH_LOG_WARNING, "select: %s%s: not found under %s",
                    ich_labels_id(job->labels, r), job->options->extension, job->src_dir);
    }
    if (missing > LOG_NAMED)
        ich_log(ICH_LOG_WARNING, "select: %lld more images not found under %s",
                (long long)(missing - LOG_NAMED), job->src_dir);
    return missing;
}

/* A new, empty table with the label columns of `labels`. */
static ich_status empty_like(const ich_labels *labels, ich_labels **out)
{
    int32_t columns = ich_labels_columns(labels);
    const char *names[ICH_LABELS_MAX_COLUMNS];
    if (columns < 1 || columns > ICH_LABELS_MAX_COLUMNS)
        return ich_fail(ICH_ERR_INTERNAL, "label table with %d columns", (int)columns);
    for (int32_t c = 0; c < columns; c++)
        names[c] = ich_labels_column_name(labels, c);
    return ich_labels_create(names, columns, out);
}

/* The rows whose image is now in dst_dir, in table order. */
static ich_status found_table(const select_job *job, int64_t rows, ich_labels **out)
{
    ich_labels *found = NULL;
    ich_status status = empty_like(job->labels, &found);
    for (int64_t r = 0; r < rows && status == ICH_OK; r++)
        if (job->states[r] == ROW_PLACED)
            status = ich_labels_add(found, ich_labels_id(job->labels, r),
                                    ich_labels_values(job->labels, r),
                                    ich_labels_group(job->labels, r));
    if (status != ICH_OK) {
        ich_labels_free(found);
        return status;
    }
    *out = found;
    return ICH_OK;
}

static ich_status check_folders(const char *src_dir, const char *dst_dir)
{
    struct stat st;
    if (stat(src_dir, &st) != 0)
        return ich_fail(ICH_ERR_IO, "%s: cannot read source folder: %s", src_dir,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ich_fail(ICH_ERR_IO, "%s: source is not a folder", src_dir);
    DIR *d = opendir(src_dir);
    if (!d)
        return ich_fail(ICH_ERR_IO, "%s: cannot read source folder: %s", src_dir,
                        strerror(errno));
    closedir(d);
    return ich_make_dirs(dst_dir);
}

ich_status ich_labels_select_files(const ich_labels *labels, const char *src_dir,
                                   const char *dst_dir, const ich_select_options *options,
                                   int64_t *copied, int64_t *missing, int64_t *failed,
                                   ich_labels **found)
{
    int64_t *counts[3] = {copied, missing, failed};
    for (int i = 0; i < 3; i++)
        if (counts[i])
            *counts[i] = 0;
    if (found)
        *found = NULL;
    if (!labels || !src_dir || !dst_dir)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_select_files: NULL %s",
                        !labels ? "labels" : !src_dir ? "src_dir" : "dst_dir");
    ich_select_options opts;
    ich_status status = read_options(options, &opts);
    if (status == ICH_OK)
        status = check_folders(src_dir, dst_dir);
    if (status != ICH_OK)
        return status;

    int64_t rows = ich_labels_rows(labels);
    select_job job = {labels, &opts, src_dir, dst_dir, NULL, NULL, NULL, 0};
    job.sources = calloc(rows ? (size_t)rows : 1, sizeof *job.sources);
    job.states = calloc(rows ? (size_t)rows : 1, 1);
    job.todo = calloc(rows ? (size_t)rows : 1, sizeof *job.todo);
    if (!job.sources || !job.states || !job.todo)
        status = ich_fail(ICH_ERR_NO_MEMORY, "select: out of memory for %lld rows",
                          (long long)rows);
    if (status == ICH_OK)
        status = ich_parallel_for(rows, opts.threads, locate_item, &job, ich_cancel_progress(),
                                  NULL, "select: locating", NULL);
    if (status == ICH_OK)
        status = find_the_rest(&job, rows);
    int64_t lost = 0, todo = 0, placed = 0, broken = 0;
    if (status == ICH_OK) {
        lost = report_missing(&job, rows);
        for (int64_t r = 0; r < rows; r++)
            if (job.states[r] == ROW_PENDING)
                job.todo[todo++] = r;
        status = ich_parallel_for(todo, opts.threads, place_item, &job, opts.progress,
                                  opts.progress_user, "select", NULL);
        for (int64_t r = 0; r < rows; r++) {
            placed += job.states[r] == ROW_PLACED;
            broken += job.states[r] == ROW_FAILED;
        }
        if (job.logged_failures > LOG_NAMED)
            ich_log(ICH_LOG_WARNING, "select: %lld more files failed",
                    (long long)(job.logged_failures - LOG_NAMED));
        ich_log(ICH_LOG_INFO, "select: %lld placed in %s, %lld missing, %lld failed",
                (long long)placed, dst_dir, (long long)lost, (long long)broken);
    }
    if (copied)
        *copied = placed;
    if (missing)
        *missing = lost;
    if (failed)
        *failed = broken;
    if (status == ICH_OK && found)
        status = found_table(&job, rows, found);
    for (int64_t r = 0; job.sources && r < rows; r++)
        free(job.sources[r]);
    free(job.sources);
    free(job.states);
    free(job.todo);
    return status;
}

/* ---- Groups from the DICOM headers -------------------------------------- */

typedef struct patients_job {
    const ich_labels *labels;
    const char *image_dir;
    char **patients; /* per row: the PatientID read, NULL when unreadable */
    atomic_llong logged;
} patients_job;

static ich_status read_patient(void *context, int64_t row, int worker)
{
    (void)worker;
    patients_job *job = context;
    const char *id = ich_labels_id(job->labels, row);
    char *path = NULL;
    ich_dicom *dicom = NULL;
    ich_status status = ich_id_input_path(job->image_dir, id, ".dcm", &path);
    if (status == ICH_OK)
        status = ich_dicom_read(path, &dicom);
    ich_dicom_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (status == ICH_OK)
        status = ich_dicom_get_info(dicom, &info);
    if (status == ICH_OK && !(job->patients[row] = strdup(info.patient_id)))
        status = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    if (status != ICH_OK && atomic_fetch_add(&job->logged, 1) < LOG_NAMED)
        ich_log(ICH_LOG_WARNING, "groups from DICOM: %s (row %lld) keeps its group: %s", id,
                (long long)row + 1, ich_last_error());
    ich_dicom_free(dicom);
    free(path);
    return status;
}

ich_status ich_labels_groups_from_dicom(ich_labels *labels, const char *image_dir,
                                        int32_t threads, int64_t *unreadable)
{
    if (unreadable)
        *unreadable = 0;
    if (!labels || !image_dir)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_groups_from_dicom: NULL %s",
                        labels ? "image_dir" : "labels");
    int64_t rows = ich_labels_rows(labels);
    patients_job job = {labels, image_dir, calloc(rows ? (size_t)rows : 1, sizeof(char *)), 0};
    if (!job.patients)
        return ich_fail(ICH_ERR_NO_MEMORY, "groups from DICOM: out of memory");
    int64_t failed = 0, anonymous = 0;
    ich_status status = ich_parallel_for(rows, threads, read_patient, &job,
                                         ich_cancel_progress(), NULL, "groups from DICOM",
                                         &failed);
    /* Set the groups on this thread, in row order: the table is not
     * thread-safe for writing. A file without a PatientID keeps its group. */
    for (int64_t r = 0; r < rows && status == ICH_OK; r++) {
        if (job.patients[r] && job.patients[r][0])
            status = ich_labels_set_group(labels, r, job.patients[r]);
        else if (job.patients[r])
            anonymous++;
    }
    if (job.logged > LOG_NAMED)
        ich_log(ICH_LOG_WARNING, "groups from DICOM: %lld more files could not be read",
                (long long)(job.logged - LOG_NAMED));
    if (anonymous)
        ich_log(ICH_LOG_WARNING, "groups from DICOM: %lld files have no PatientID and keep "
                "their group", (long long)anonymous);
    for (int64_t r = 0; r < rows; r++)
        free(job.patients[r]);
    free(job.patients);
    if (unreadable)
        *unreadable = failed;
    return status;
}
