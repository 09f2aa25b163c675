/* Offline augmentation: augmented copies of minority-label training images
 * until each label has the target number of positive rows.
 *
 * The work has two parts. Planning (one thread, seeded) decides which
 * source rows get copies and numbers them; writing (parallel) reads each
 * chosen source PNG once and writes its copies. Each copy is augmented with
 * a seed made from (seed, source row, k), so the files do not depend on the
 * thread count. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "core/fileutil.h"
#include "core/parallel.h"
#include "core/paths.h"
#include "core/rng.h"
#include "ich/augment.h"
#include "ich/image.h"
#include "ich/labels.h"

#define OFFLINE_STREAM 0x6f66666c696e65ull /* "offline": the drawing of rows */
#define COPY_STREAM 0x636f7079ull          /* "copy": the seed of one copy */

void (ich_augment_offline_options_init)(ich_augment_offline_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_augment_offline_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_augment_offline_options, progress_user));
}

/* One augmented copy: source row, its number k, its new ID, and whether it
 * was written. */
typedef struct copy_job {
    int64_t row;
    int64_t k;
    char *id;
    int written;
} copy_job;

typedef struct plan {
    copy_job *jobs; /* in the order drawn */
    int64_t count, capacity;
    int64_t *by_source; /* job indices sorted by source row (then k) */
    int64_t *group_start; /* groups of by_source with one source row */
    int64_t groups;
} plan;

static void plan_free(plan *p)
{
    for (int64_t i = 0; i < p->count; i++)
        free(p->jobs[i].id);
    free(p->jobs);
    free(p->by_source);
    free(p->group_start);
    *p = (plan){0};
}

static int is_positive(float value) { return value >= 0.5f; }

static ich_status add_job(plan *p, int64_t row)
{
    if (p->count == p->capacity) {
        int64_t capacity = p->capacity ? 2 * p->capacity : 256;
        copy_job *jobs = realloc(p->jobs, (size_t)capacity * sizeof *jobs);
        if (!jobs)
            return ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_offline: out of memory planning copies");
        p->jobs = jobs;
        p->capacity = capacity;
    }
    p->jobs[p->count++] = (copy_job){row, 0, NULL, 0};
    return ICH_OK;
}

/* Columns by increasing positive count (ties by column order): the rarest
 * label is topped up first, so that its copies, which often carry other
 * labels too, count towards those before they get copies of their own. */
static void columns_by_count(const int64_t *counts, int32_t columns, int32_t *order)
{
    for (int32_t i = 0; i < columns; i++) {
        int32_t j = i;
        for (; j > 0 && counts[order[j - 1]] > counts[i]; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
}

/* Draw copies of the rows positive for `column` until it has `target`
 * positives. Rows are taken in a seeded random order, each once before any
 * is taken again, so copies spread evenly over the source images. Every
 * copy adds to each label its row carries (counts is updated). */
static ich_status top_up_column(const ich_labels *train, int32_t column, int64_t target,
                                uint64_t seed, int64_t *counts, plan *p)
{
    int64_t rows = ich_labels_rows(train);
    int32_t columns = ich_labels_columns(train);
    int64_t *positives = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *positives);
    if (!positives)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_offline: out of memory");
    int64_t n = 0;
    for (int64_t r = 0; r < rows; r++)
        if (is_positive(ich_labels_values(train, r)[column]))
            positives[n++] = r;
    if (n == 0) {
        ich_log(ICH_LOG_WARNING, "augment: label \"%s\" has no positive row to copy",
                ich_labels_column_name(train, column));
        free(positives);
        return ICH_OK;
    }
    ich_rng rng = ich_rng_init(seed, OFFLINE_STREAM, (uint64_t)column);
    ich_status st = ICH_OK;
    for (int64_t next = n; st == ICH_OK && counts[column] < target; next++) {
        if (next == n) {
            ich_rng_shuffle_i64(&rng, positives, n);
            next = 0;
        }
        int64_t row = positives[next];
        st = add_job(p, row);
        const float *values = ich_labels_values(train, row);
        for (int32_t c = 0; c < columns; c++)
            counts[c] += is_positive(values[c]);
    }
    free(positives);
    return st;
}

static char *format_id(const char *id, int64_t k)
{
    size_t n = strlen(id) + 32;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s_aug_%lld", id, (long long)k);
    return s;
}

/* Number each source row's copies 1, 2, ... in the order drawn, skipping
 * numbers whose ID the table already has (a table augmented before). */
static ich_status number_copies(const ich_labels *train, plan *p)
{
    int64_t rows = ich_labels_rows(train);
    int64_t *last_k = calloc((size_t)(rows > 0 ? rows : 1), sizeof *last_k);
    if (!last_k)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_offline: out of memory");
    ich_status st = ICH_OK;
    for (int64_t j = 0; j < p->count && st == ICH_OK; j++) {
        copy_job *job = &p->jobs[j];
        const char *source = ich_labels_id(train, job->row);
        for (;;) {
            job->k = ++last_k[job->row];
            free(job->id);
            job->id = format_id(source, job->k);
            if (!job->id) {
                st = ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_offline: out of memory");
                break;
            }
            if (ich_labels_find(train, job->id) < 0)
                break;
        }
    }
    free(last_k);
    return st;
}

/* Group the jobs by source row (counting sort, stable: k stays increasing). */
static ich_status group_by_source(int64_t rows, plan *p)
{
    int64_t *start = calloc((size_t)rows + 1, sizeof *start);
    p->by_source = malloc((size_t)(p->count > 0 ? p->count : 1) * sizeof *p->by_source);
    p->group_start = malloc((size_t)(p->count + 1) * sizeof *p->group_start);
    if (!start || !p->by_source || !p->group_start) {
        free(start);
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_offline: out of memory");
    }
    for (int64_t j = 0; j < p->count; j++)
        start[p->jobs[j].row + 1]++;
    for (int64_t r = 0; r < rows; r++)
        start[r + 1] += start[r];
    for (int64_t j = 0; j < p->count; j++)
        p->by_source[start[p->jobs[j].row]++] = j;
    free(start);
    p->groups = 0;
    for (int64_t i = 0; i < p->count; i++)
        if (i == 0 || p->jobs[p->by_source[i]].row != p->jobs[p->by_source[i - 1]].row)
            p->group_start[p->groups++] = i;
    p->group_start[p->groups] = p->count;
    return ICH_OK;
}

/* ---- Writing the copies (parallel) --------------------------------------- */

typedef struct writer {
    const ich_augment *augment;
    const ich_labels *train;
    const char *image_dir, *out_dir;
    uint64_t seed;
    plan *plan;
} writer;

static ich_status write_copy(const writer *w, copy_job *job, const uint8_t *source, int32_t width,
                             int32_t height, int32_t channels, uint8_t *work)
{
    size_t bytes = (size_t)width * height * channels;
    memcpy(work, source, bytes);
    ich_rng rng = ich_rng_init(w->seed, COPY_STREAM ^ (uint64_t)job->row, (uint64_t)job->k);
    ich_status st = ich_augment_apply_u8(w->augment, ich_rng_next(&rng), work, height, width,
                                         channels);
    char *path = NULL;
    if (st == ICH_OK)
        st = ich_id_path(w->out_dir, job->id, ".png", 0, &path);
    if (st == ICH_OK && strchr(job->id, '/'))
        st = ich_make_parent_dirs(path);
    if (st == ICH_OK)
        st = ich_png_write(path, work, width, height, channels);
    if (st == ICH_OK)
        job->written = 1;
    else
        ich_log(ICH_LOG_WARNING, "augment: copy %s not written: %s", job->id, ich_last_error());
    free(path);
    return st;
}

/* Item `g`: read one source image and write all of its copies. */
static ich_status write_group(void *context, int64_t g, int worker)
{
    writer *w = context;
    const plan *p = w->plan;
    int64_t first = p->group_start[g], end = p->group_start[g + 1];
    int64_t row = p->jobs[p->by_source[first]].row;
    const char *id = ich_labels_id(w->train, row);
    /* The source and every copy must stay inside their folders: an ID such
     * as "../outside/victim" is refused before anything is read or written. */
    char *path = NULL;
    ich_status st = ich_id_input_path(w->image_dir, id, ".png", &path);
    uint8_t *pixels = NULL, *work = NULL;
    int32_t width = 0, height = 0, channels = 0;
    if (st == ICH_OK)
        st = ich_png_read(path, &pixels, &width, &height, &channels);
    free(path);
    if (st != ICH_OK) {
        ich_log(ICH_LOG_WARNING, "augment: skipped %s (row %lld): %s", id, (long long)row + 1,
                ich_last_error());
        return st;
    }
    work = malloc((size_t)width * height * channels);
    if (!work)
        st = ich_fail(ICH_ERR_NO_MEMORY, "ich_augment_offline: out of memory for %s", id);
    ich_status first_failure = st;
    for (int64_t i = first; i < end && work; i++) {
        st = write_copy(w, &p->jobs[p->by_source[i]], pixels, width, height, channels, work);
        if (first_failure == ICH_OK)
            first_failure = st;
    }
    free(work);
    ich_free(pixels);
    return first_failure;
}

/* ---- The result table ------------------------------------------------------ */

static ich_status build_result(const ich_labels *train, const plan *p, ich_labels **out)
{
    int32_t columns = ich_labels_columns(train);
    const char *names[ICH_LABELS_MAX_COLUMNS];
    for (int32_t c = 0; c < columns; c++)
        names[c] = ich_labels_column_name(train, c);
    ich_labels *result = NULL;
    ich_status st = ich_labels_create(names, columns, &result);
    for (int64_t r = 0; st == ICH_OK && r < ich_labels_rows(train); r++)
        st = ich_labels_add(result, ich_labels_id(train, r), ich_labels_values(train, r),
                            ich_labels_group(train, r));
    for (int64_t i = 0; st == ICH_OK && i < p->count; i++) {
        const copy_job *job = &p->jobs[p->by_source[i]];
        if (job->written)
            st = ich_labels_add(result, job->id, ich_labels_values(train, job->row),
                                ich_labels_group(train, job->row));
    }
    if (st != ICH_OK) {
        ich_labels_free(result);
        return st;
    }
    *out = result;
    return ICH_OK;
}

/* ---- Entry point ---------------------------------------------------------- */

ich_status ich_augment_offline(const ich_augment *augment, const ich_labels *train,
                               const char *image_dir, const char *out_dir,
                               const ich_augment_offline_options *options, ich_labels **out)
{
    static const char fn[] = "ich_augment_offline";
    if (out)
        *out = NULL;
    if (!augment || !train || !image_dir || !out_dir || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    ich_augment_offline_options o;
    ich_augment_offline_options_init(&o);
    ich_status st = ich_options_merge(
        &o, sizeof o, options, ICH_OPTIONS_V1_SIZE(ich_augment_offline_options, progress_user), fn);
    if (st != ICH_OK)
        return st;
    if (o.target < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: target = %lld is negative", fn,
                        (long long)o.target);
    int32_t columns = ich_labels_columns(train);
    int64_t rows = ich_labels_rows(train);
    if (columns <= 0 || columns > ICH_LABELS_MAX_COLUMNS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "%s: the table has %d label columns", fn,
                        columns);
    int64_t counts[ICH_LABELS_MAX_COLUMNS];
    int32_t order[ICH_LABELS_MAX_COLUMNS];
    st = ich_labels_positives(train, counts, columns);
    if (st != ICH_OK)
        return st;
    int64_t target = o.target;
    for (int32_t c = 0; c < columns && o.target == 0; c++)
        target = counts[c] > target ? counts[c] : target;

    plan p = {0};
    columns_by_count(counts, columns, order);
    for (int32_t i = 0; i < columns && st == ICH_OK; i++)
        if (counts[order[i]] < target)
            st = top_up_column(train, order[i], target, o.seed, counts, &p);
    if (st == ICH_OK)
        st = number_copies(train, &p);
    if (st == ICH_OK)
        st = group_by_source(rows, &p);
    if (st == ICH_OK && p.count > 0)
        st = ich_make_dirs(out_dir);
    int64_t failed = 0;
    if (st == ICH_OK && p.count > 0) {
        writer w = {augment, train, image_dir, out_dir, o.seed, &p};
        st = ich_parallel_for(p.groups, ich_thread_count(o.threads, p.groups), write_group, &w,
                              o.progress, o.progress_user, "augment", &failed);
    }
    if (st == ICH_OK)
        st = build_result(train, &p, out);
    if (st == ICH_OK && failed > 0)
        ich_log(ICH_LOG_WARNING, "augment: %lld of %lld source images failed; their labels stay "
                "under the target", (long long)failed, (long long)p.groups);
    plan_free(&p);
    return st;
}
