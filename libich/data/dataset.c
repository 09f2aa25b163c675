/* The dataset handle: open (files, shape, neighbours), epochs in a seeded
 * order, and a pool of worker threads that fill a ring of batch buffers
 * ahead of the caller. Loading one sample is in dataset_load.c. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/options.h"
#include "core/fileutil.h"
#include "core/paths.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/csv.h"
#include "data/dataset_internal.h"
#include "ich/dicom.h"

#define MAX_WORKERS 64
#define MAX_PREFETCH 64
#define MAX_NEIGHBORS 16

void (ich_dataset_options_init)(ich_dataset_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_dataset_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->batch_size = 16;
    options->shuffle = 1;
    options->workers = 2;
    options->prefetch = 2;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_dataset_options, extension));
}

/* The caller's options over the defaults, field by field as far as its
 * `size` reaches (older callers pass a shorter struct). */
static ich_status read_options(const ich_dataset_options *in, ich_dataset_options *o)
{
    ich_dataset_options_init(o);
    ich_status st = ich_options_merge(o, sizeof *o, in,
                                      ICH_OPTIONS_V1_SIZE(ich_dataset_options, extension),
                                      "ich_dataset_open");
    if (st != ICH_OK)
        return st;
    if (o->batch_size < 1 || o->workers < 0 || o->workers > MAX_WORKERS || o->prefetch < 1 ||
        o->prefetch > MAX_PREFETCH || o->neighbors < 0 || o->neighbors > MAX_NEIGHBORS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "dataset options: batch_size %d (>= 1), workers %d (0..%d), prefetch %d "
                        "(1..%d), neighbors %d (0..%d)",
                        o->batch_size, o->workers, MAX_WORKERS, o->prefetch, MAX_PREFETCH,
                        o->neighbors, MAX_NEIGHBORS);
    if (o->extension && strcasecmp(o->extension, ".dcm") != 0 &&
        strcasecmp(o->extension, ".png") != 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "dataset options: extension \"%.32s\" (use \".dcm\", \".png\" or NULL)",
                        o->extension);
    return ICH_OK;
}

/* ---- Freeing ----------------------------------------------------------- */

static void stop_workers(ich_dataset *ds)
{
    if (!ds->threads)
        return;
    pthread_mutex_lock(&ds->lock);
    ds->stop = 1;
    atomic_store(&ds->stopping, 1);
    pthread_cond_broadcast(&ds->work);
    pthread_mutex_unlock(&ds->lock);
    for (int32_t i = 0; i < ds->thread_count; i++)
        pthread_join(ds->threads[i], NULL);
    free(ds->threads);
    ds->threads = NULL;
}

void ich_dataset_free(ich_dataset *ds)
{
    if (!ds)
        return;
    stop_workers(ds);
    pthread_mutex_destroy(&ds->lock);
    pthread_cond_destroy(&ds->work);
    pthread_cond_destroy(&ds->ready);
    for (int32_t i = 0; ds->slots && i < ds->slot_count; i++) {
        free(ds->slots[i].images);
        free(ds->slots[i].labels);
        free(ds->slots[i].rows);
    }
    free(ds->slots);
    for (int64_t i = 0; ds->paths && i < ds->length; i++)
        free(ds->paths[i]);
    free(ds->paths);
    free(ds->is_png);
    free(ds->neighbors);
    free((void *)ds->warned);
    free(ds->order);
    free(ds->drawn_rows);
    free(ds->positive_column);
    ich_window_free(ds->window);
    ich_augment_free(ds->augment);
    ich_labels_free(ds->labels);
    free(ds);
}

/* ---- Recipes ----------------------------------------------------------- */

static ich_status default_window(ich_window **out)
{
    ich_status st = ich_window_create(out);
    if (st == ICH_OK)
        st = ich_window_add_list(*out, "blood,brain,bone");
    if (st == ICH_OK)
        st = ich_window_set_size(*out, 256, 256, ICH_RESIZE_BILINEAR);
    if (st != ICH_OK) {
        ich_window_free(*out);
        *out = NULL;
    }
    return st;
}

/* The caller's recipe (or the default) with the dataset's neighbouring
 * slices recorded, so ich_dataset_input_window() describes the whole
 * sample. A recipe that records other neighbours than the options ask for
 * is refused: it was made for another network input. */
static ich_status copy_window(const ich_window *window, int32_t neighbors, ich_window **out)
{
    int32_t recorded = ich_window_get_neighbors(window);
    if (window && recorded != 0 && recorded != neighbors)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "dataset: the window recipe stacks %d neighbouring slices on each side, "
                        "the options ask for %d: set options.neighbors = %d",
                        recorded, neighbors, recorded);
    ich_status st = window ? ich_window_copy(window, out) : default_window(out);
    if (st == ICH_OK)
        (*out)->neighbors = neighbors;
    return st;
}

/* Through its text form, which ich_augment_parse() reads back. */
static ich_status copy_augment(const ich_augment *augment, ich_augment **out)
{
    *out = NULL;
    if (!augment)
        return ICH_OK;
    char text[2048];
    ich_status st = ich_augment_describe(augment, text, sizeof text);
    if (st == ICH_OK)
        st = ich_augment_create(out);
    if (st == ICH_OK && text[0])
        st = ich_augment_parse(*out, text);
    if (st != ICH_OK) {
        ich_augment_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- Files ------------------------------------------------------------- */

/* Find the file of `id`: *path stays NULL when there is none. An ID that
 * cannot name a file inside `dir` (ich_id_path()) is refused: *refused. */
static ich_status find_image(const char *dir, const char *id, const char *extension, char **path,
                             unsigned char *png, int *refused)
{
    static const char *const both[] = {".dcm", ".png"};
    *path = NULL;
    *refused = 0;
    for (int i = 0; i < 2; i++) {
        const char *ext = extension ? extension : both[i];
        char *candidate = NULL;
        ich_status st = ich_id_path(dir, id, ext, 0, &candidate);
        if (st == ICH_ERR_FORMAT) {
            *refused = 1;
            return ICH_OK;
        }
        if (st != ICH_OK)
            return st;
        if (ich_is_regular_file(candidate)) {
            *path = candidate;
            *png = strcasecmp(ext, ".png") == 0;
            return ICH_OK;
        }
        free(candidate);
        if (extension)
            break;
    }
    return ICH_OK;
}

/* Keep the rows of `labels` whose image exists: ds->labels, paths, is_png. */
static ich_status collect_files(ich_dataset *ds, const ich_labels *labels, const char *dir,
                                const char *extension)
{
    const int64_t rows = ich_labels_rows(labels);
    const int32_t columns = ich_labels_columns(labels);
    const char *names[ICH_LABELS_MAX_COLUMNS];
    for (int32_t c = 0; c < columns && c < ICH_LABELS_MAX_COLUMNS; c++)
        names[c] = ich_labels_column_name(labels, c);
    ich_status st = ich_labels_create(names, columns, &ds->labels);
    if (st != ICH_OK)
        return st;
    ds->paths = calloc(rows ? (size_t)rows : 1, sizeof *ds->paths);
    ds->is_png = calloc(rows ? (size_t)rows : 1, 1);
    if (!ds->paths || !ds->is_png)
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    int64_t missing = 0, refused = 0;
    for (int64_t r = 0; r < rows; r++) {
        const char *id = ich_labels_id(labels, r);
        char *path;
        int bad_id;
        st = find_image(dir, id, extension, &path, &ds->is_png[ds->length], &bad_id);
        if (st != ICH_OK)
            return st;
        if (bad_id) { /* ich_last_error() names the ID and why */
            if (refused++ < 20)
                ich_log(ICH_LOG_WARNING, "dataset: row %lld: %s (left out)", (long long)r + 1,
                        ich_last_error());
            continue;
        }
        if (!path) {
            if (missing++ < 20)
                ich_log(ICH_LOG_WARNING, "dataset: no image for %s in %s (left out)", id, dir);
            continue;
        }
        st = ich_labels_add(ds->labels, id, ich_labels_values(labels, r),
                            ich_labels_group(labels, r));
        if (st != ICH_OK) {
            free(path);
            return st;
        }
        ds->paths[ds->length++] = path;
    }
    ds->left_at_open = missing + refused;
    if (missing > 20)
        ich_log(ICH_LOG_WARNING, "dataset: %lld images missing in %s in all (left out)",
                (long long)missing, dir);
    if (refused > 20)
        ich_log(ICH_LOG_WARNING, "dataset: %lld IDs refused in all (left out)",
                (long long)refused);
    if (ds->length == 0 && refused > 0)
        return ich_fail(ICH_ERR_NOT_FOUND, "dataset: none of the %lld images found in %s (%lld "
                        "IDs refused: they cannot name a file inside it)",
                        (long long)rows, dir, (long long)refused);
    if (ds->length == 0)
        return ich_fail(ICH_ERR_NOT_FOUND, "dataset: none of the %lld images found in %s",
                        (long long)rows, dir);
    return ICH_OK;
}

/* ---- Shape ------------------------------------------------------------- */

/* Channels and size of one slice: from the recipe when it fixes them, else
 * from the first image that can be read. */
static ich_status find_shape(ich_dataset *ds)
{
    const ich_window_settings *s = &ds->settings;
    int any_dicom = 0;
    for (int64_t i = 0; i < ds->length && !any_dicom; i++)
        any_dicom = !ds->is_png[i];
    if (any_dicom) { /* the recipe must be usable on DICOM slices */
        ich_status st = ich_window_output_shape(ds->window, 1, 1, NULL, NULL, NULL);
        if (st != ICH_OK)
            return st;
    }
    ich_status st = ICH_ERR_NOT_FOUND;
    if (s->out_rows && !ds->is_png[0]) {
        ds->rows = s->out_rows;
        ds->columns = s->out_cols;
        ds->slice_channels = s->count ? s->count : 1;
        st = ICH_OK;
    }
    for (int64_t i = 0; i < ds->length && st != ICH_OK; i++) {
        st = ich_dataset_probe(ds, i, &ds->slice_channels, &ds->rows, &ds->columns);
        if (st == ICH_OK && s->out_rows) {
            ds->rows = s->out_rows;
            ds->columns = s->out_cols;
        }
    }
    if (st != ICH_OK)
        return st;
    if ((int64_t)ds->slice_channels * ds->span > 4096)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "dataset: %d channels per slice x %d slices is too many",
                        ds->slice_channels, ds->span);
    ds->channels = ds->slice_channels * ds->span;
    ds->label_count = ich_labels_columns(ds->labels);
    ds->sample_floats = (size_t)ds->channels * ds->rows * ds->columns;
    return ICH_OK;
}

/* ---- Neighbours -------------------------------------------------------- */

typedef struct slice_pos {
    char *series; /* NULL or "": a series of its own */
    double z;
    int64_t index;
} slice_pos;

static int compare_pos(const void *pa, const void *pb)
{
    const slice_pos *a = pa, *b = pb;
    int a_alone = !a->series || !*a->series, b_alone = !b->series || !*b->series;
    if (a_alone != b_alone)
        return a_alone - b_alone;
    int c = a_alone ? 0 : strcmp(a->series, b->series);
    if (c)
        return c;
    if (!a_alone && a->z != b->z)
        return a->z < b->z ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static int same_series(const slice_pos *a, const slice_pos *b)
{
    return a->series && b->series && *a->series && strcmp(a->series, b->series) == 0;
}

typedef struct header_job {
    const ich_dataset *ds;
    slice_pos *pos;
} header_job;

static ich_status read_header(void *context, int64_t index, int worker)
{
    (void)worker;
    header_job *job = context;
    if (job->ds->is_png[index])
        return ICH_OK;
    ich_dicom *dicom;
    ich_status st = ich_dicom_read(job->ds->paths[index], &dicom);
    if (st != ICH_OK)
        return st;
    ich_dicom_info info = {.size = sizeof info};
    st = ich_dicom_get_info(dicom, &info);
    ich_dicom_free(dicom);
    if (st != ICH_OK)
        return st;
    if (!(info.image_position[2] == info.image_position[2]))
        return ICH_OK; /* no position: a series of its own */
    job->pos[index].z = info.image_position[2];
    job->pos[index].series = strdup(info.series_instance_uid);
    return job->pos[index].series ? ICH_OK : ICH_ERR_NO_MEMORY;
}

static ich_status positions_from_dicom(const ich_dataset *ds, slice_pos *pos)
{
    header_job job = {ds, pos};
    int64_t failed = 0;
    ich_status st = ich_parallel_for(ds->length, 0, read_header, &job, ich_cancel_progress(),
                                     NULL, "reading DICOM headers", &failed);
    if (st == ICH_OK && failed)
        ich_log(ICH_LOG_WARNING,
                "dataset: %lld DICOM headers could not be read; those slices stand alone",
                (long long)failed);
    return st;
}

static ich_status positions_from_csv(const ich_dataset *ds, const char *path, slice_pos *pos)
{
    ich_csv *csv;
    ich_status st = ich_csv_read(path, &csv);
    if (st != ICH_OK)
        return st;
    int id = ich_csv_find_column(csv, "ID"), series = ich_csv_find_column(csv, "series");
    int z = ich_csv_find_column(csv, "z");
    if (id < 0 || series < 0 || z < 0)
        st = ich_fail(ICH_ERR_FORMAT, "%s:1: needs the columns ID, series and z", path);
    for (int64_t r = 0; st == ICH_OK && r < ich_csv_rows(csv); r++) {
        int64_t row = ich_labels_find(ds->labels, ich_csv_cell(csv, r, id));
        if (row < 0)
            continue;
        const char *text = ich_csv_cell(csv, r, z);
        char *end;
        errno = 0;
        double value = strtod(text, &end);
        if (end == text || *end || errno || !(value == value))
            st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: z \"%.32s\" is not a number", path,
                          (long long)ich_csv_line(csv, r), text);
        else if (!pos[row].series) {
            pos[row].z = value;
            pos[row].series = strdup(ich_csv_cell(csv, r, series));
            if (!pos[row].series)
                st = ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
        }
    }
    ich_csv_free(csv);
    return st;
}

/* Sort the samples by (series, z) and give each its k neighbours a side,
 * repeating a series' first and last slice past its ends. */
static void make_neighbors(ich_dataset *ds, slice_pos *pos)
{
    const int32_t k = (ds->span - 1) / 2;
    qsort(pos, (size_t)ds->length, sizeof *pos, compare_pos);
    for (int64_t start = 0, end; start < ds->length; start = end) {
        for (end = start + 1; end < ds->length && same_series(&pos[start], &pos[end]); end++)
            ;
        for (int64_t p = start; p < end; p++)
            for (int32_t j = -k; j <= k; j++) {
                int64_t q = p + j < start ? start : (p + j >= end ? end - 1 : p + j);
                ds->neighbors[pos[p].index * ds->span + (j + k)] = pos[q].index;
            }
    }
}

static ich_status find_neighbors(ich_dataset *ds, const char *metadata_csv)
{
    if (ds->span == 1)
        return ICH_OK;
    slice_pos *pos = calloc((size_t)ds->length, sizeof *pos);
    ds->neighbors = malloc((size_t)ds->length * ds->span * sizeof *ds->neighbors);
    if (!pos || !ds->neighbors) {
        free(pos);
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    }
    for (int64_t i = 0; i < ds->length; i++)
        pos[i].index = i;
    ich_status st = metadata_csv ? positions_from_csv(ds, metadata_csv, pos)
                                 : positions_from_dicom(ds, pos);
    if (st == ICH_OK) {
        int64_t alone = 0;
        for (int64_t i = 0; i < ds->length; i++)
            alone += !pos[i].series || !*pos[i].series;
        if (alone)
            ich_log(ICH_LOG_WARNING,
                    "dataset: %lld images without a series and position%s; they are stacked "
                    "with themselves",
                    (long long)alone, metadata_csv ? " in the metadata CSV" : "");
        make_neighbors(ds, pos);
    }
    for (int64_t i = 0; i < ds->length; i++)
        free(pos[i].series);
    free(pos);
    return st;
}

/* ---- Workers ----------------------------------------------------------- */

static void log_failure_once(const ich_dataset *ds, int64_t index)
{
    if (atomic_exchange(&((ich_dataset *)ds)->warned[index], 1) == 0)
        ich_log(ICH_LOG_WARNING, "dataset: sample %lld (%s) left out: %s", (long long)index,
                ds->paths[index], ich_last_error());
}

/* The batch being loaded for `generation` is no longer wanted. */
static int abandoned(const ich_dataset *ds, uint64_t generation)
{
    return atomic_load(&((ich_dataset *)ds)->stopping) ||
           atomic_load(&((ich_dataset *)ds)->live_generation) != generation;
}

/* Load the samples rows[0 .. count-1] into a batch; those that fail are
 * left out, so rows[] is compacted and *loaded says how many remain. Stops
 * early when the batch's epoch is abandoned. */
static void load_batch(const ich_dataset *ds, int64_t *rows, int32_t count, int64_t epoch,
                       uint64_t generation, float *images, float *labels, int32_t *loaded)
{
    int32_t k = 0;
    for (int32_t i = 0; i < count && !abandoned(ds, generation); i++) {
        int64_t index = rows[i];
        if (ich_dataset_load_sample(ds, index, 1, epoch, images + k * ds->sample_floats) != ICH_OK) {
            log_failure_once(ds, index);
            continue;
        }
        memcpy(labels + (size_t)k * ds->label_count, ich_labels_values(ds->labels, index),
               (size_t)ds->label_count * sizeof *labels);
        rows[k++] = index;
    }
    *loaded = k;
}

void ich_dataset_shard_range(int32_t n, int32_t rank, int32_t count, int32_t *first,
                             int32_t *end)
{
    /* ceil: the first ranks take the remainder, so rank 0 (whose running
     * statistics the others adopt) is empty only when every rank is */
    *first = (int32_t)(((int64_t)rank * n + count - 1) / count);
    *end = (int32_t)(((int64_t)(rank + 1) * n + count - 1) / count);
}

/* Samples of batch `b` of the current epoch (this rank's share of it):
 * their indices into rows[]. */
static int32_t batch_rows(const ich_dataset *ds, int64_t b, int64_t *rows)
{
    int64_t first = b * ds->batch_size;
    int64_t count = ds->drawn - first < ds->batch_size ? ds->drawn - first : ds->batch_size;
    int32_t lo = 0, hi = (int32_t)count;
    if (ds->shard_count > 1)
        ich_dataset_shard_range((int32_t)count, ds->shard_rank, ds->shard_count, &lo, &hi);
    memcpy(rows, ds->order + first + lo, (size_t)(hi - lo) * sizeof *rows);
    return hi - lo;
}

static int can_assign(const ich_dataset *ds)
{
    return ds->started && ds->assigned < ds->batches &&
           ds->assigned < ds->consumed + ds->slot_count &&
           ds->slots[ds->assigned % ds->slot_count].state == SLOT_FREE;
}

static void *worker_main(void *arg)
{
    ich_dataset *ds = arg;
    pthread_mutex_lock(&ds->lock);
    for (;;) {
        while (!ds->stop && !can_assign(ds))
            pthread_cond_wait(&ds->work, &ds->lock);
        if (ds->stop)
            break;
        int64_t b = ds->assigned++;
        dataset_slot *slot = &ds->slots[b % ds->slot_count];
        slot->state = SLOT_LOADING;
        slot->batch = b;
        slot->generation = ds->generation;
        slot->epoch = ds->epoch;
        int32_t count = batch_rows(ds, b, slot->rows);
        pthread_mutex_unlock(&ds->lock);

        int32_t loaded;
        load_batch(ds, slot->rows, count, slot->epoch, slot->generation, slot->images,
                   slot->labels, &loaded);

        pthread_mutex_lock(&ds->lock);
        slot->count = loaded;
        /* A batch of an abandoned epoch is dropped. */
        slot->state = slot->generation == ds->generation ? SLOT_READY : SLOT_FREE;
        pthread_cond_broadcast(&ds->ready);
        pthread_cond_broadcast(&ds->work);
    }
    pthread_mutex_unlock(&ds->lock);
    return NULL;
}

static ich_status start_pool(ich_dataset *ds, int32_t prefetch)
{
    ds->order = malloc((size_t)ds->length * sizeof *ds->order);
    ds->warned = calloc((size_t)ds->length, sizeof *ds->warned);
    if (!ds->order || !ds->warned)
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    if (ds->workers == 0)
        return ICH_OK;
    /* Enough slots that every worker can load one batch. */
    ds->slot_count = prefetch > ds->workers ? prefetch : ds->workers;
    ds->slots = calloc((size_t)ds->slot_count, sizeof *ds->slots);
    if (!ds->slots)
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    for (int32_t i = 0; i < ds->slot_count; i++) {
        dataset_slot *s = &ds->slots[i];
        s->images = malloc((size_t)ds->batch_size * ds->sample_floats * sizeof *s->images);
        s->labels = malloc((size_t)ds->batch_size * (ds->label_count ? ds->label_count : 1) *
                           sizeof *s->labels);
        s->rows = malloc((size_t)ds->batch_size * sizeof *s->rows);
        if (!s->images || !s->labels || !s->rows)
            return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory for %d batches of %d",
                            ds->slot_count, ds->batch_size);
    }
    ds->threads = calloc((size_t)ds->workers, sizeof *ds->threads);
    if (!ds->threads)
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    for (int32_t i = 0; i < ds->workers; i++) {
        if (pthread_create(&ds->threads[i], NULL, worker_main, ds) != 0)
            return ich_fail(ICH_ERR_NO_MEMORY, "dataset: cannot start worker thread %d", i);
        ds->thread_count++;
    }
    return ICH_OK;
}

/* Batches per epoch of the samples drawn. */
static void count_batches(ich_dataset *ds)
{
    ds->batches = ds->drop_last ? ds->drawn / ds->batch_size
                                : (ds->drawn + ds->batch_size - 1) / ds->batch_size;
}

/* ---- Opening ----------------------------------------------------------- */

static ich_status open_table(const ich_labels *labels, const char *image_dir,
                             const ich_dataset_options *opt, ich_dataset **out);

/* The dataset over `labels`, whose columns are first matched to
 * options.model's labels when it is set; `source` names the table in the
 * messages (the CSV's path, or NULL). */
static ich_status open_matched(const ich_labels *labels, const char *source,
                               const char *image_dir, const ich_dataset_options *options,
                               ich_dataset **out)
{
    ich_dataset_options o;
    ich_status st = read_options(options, &o);
    if (st != ICH_OK || !o.model)
        return st != ICH_OK ? st : open_table(labels, image_dir, &o, out);
    ich_labels *matched = NULL;
    st = ich_labels_match_model(labels, o.model, source, NULL, &matched);
    if (st == ICH_OK)
        st = open_table(matched, image_dir, &o, out);
    ich_labels_free(matched);
    return st;
}

ich_status ich_dataset_open(const ich_labels *labels, const char *image_dir,
                            const ich_dataset_options *options, ich_dataset **out)
{
    if (out)
        *out = NULL;
    if (!labels || !image_dir || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_open: NULL argument");
    return open_matched(labels, NULL, image_dir, options, out);
}

/* ich_dataset_open() with options already read and labels already matched. */
static ich_status open_table(const ich_labels *labels, const char *image_dir,
                             const ich_dataset_options *opt, ich_dataset **out)
{
    const ich_dataset_options o = *opt;
    ich_status st;
    ich_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    /* ich_dataset_free() needs these from here on. */
    if (pthread_mutex_init(&ds->lock, NULL) != 0) {
        free(ds);
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: cannot create a mutex");
    }
    pthread_cond_init(&ds->work, NULL);
    pthread_cond_init(&ds->ready, NULL);
    ds->batch_size = o.batch_size;
    ds->shuffle = o.shuffle;
    ds->drop_last = o.drop_last;
    ds->workers = o.workers;
    ds->seed = o.seed;
    ds->span = 2 * o.neighbors + 1;
    st = copy_window(o.window, o.neighbors, &ds->window);
    if (st == ICH_OK)
        st = ich_window_read_settings(ds->window, &ds->settings);
    if (st == ICH_OK)
        st = copy_augment(o.augment, &ds->augment);
    if (st == ICH_OK)
        st = collect_files(ds, labels, image_dir, o.extension);
    if (st == ICH_OK)
        st = find_shape(ds);
    if (st == ICH_OK)
        st = find_neighbors(ds, o.metadata_csv);
    ds->drawn = ds->length;
    count_batches(ds);
    if (st == ICH_OK)
        st = start_pool(ds, o.prefetch);
    if (st != ICH_OK) {
        ich_dataset_free(ds);
        return st;
    }
    *out = ds;
    return ICH_OK;
}

ich_status ich_dataset_open_csv(const char *csv_path, const char *image_dir,
                                const ich_dataset_options *options, ich_dataset **out)
{
    if (out)
        *out = NULL;
    if (!csv_path || !image_dir || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_open_csv: NULL argument");
    ich_labels *labels;
    ich_status st = ich_labels_read(csv_path, &labels);
    if (st != ICH_OK)
        return st;
    st = open_matched(labels, csv_path, image_dir, options, out);
    ich_labels_free(labels);
    return st;
}

/* ---- Queries ----------------------------------------------------------- */

int64_t ich_dataset_length(const ich_dataset *ds) { return ds ? ds->drawn : 0; }

/* The table row of drawn sample i. */
static int64_t sample_row(const ich_dataset *ds, int64_t i)
{
    return ds->drawn_rows ? ds->drawn_rows[i] : i;
}

const ich_labels *ich_dataset_labels(const ich_dataset *ds) { return ds ? ds->labels : NULL; }

int64_t ich_dataset_batches(const ich_dataset *ds) { return ds ? ds->batches : 0; }

int64_t ich_dataset_left_out(const ich_dataset *ds)
{
    if (!ds)
        return 0;
    int64_t count = ds->left_at_open;
    for (int64_t i = 0; ds->warned && i < ds->length; i++)
        count += atomic_load(&ds->warned[i]) != 0;
    return count;
}

ich_status ich_dataset_input_window(const ich_dataset *ds, ich_window **out)
{
    if (out)
        *out = NULL;
    if (!ds || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_input_window: NULL argument");
    return ich_window_copy(ds->window, out);
}

int32_t ich_dataset_batch_size(const ich_dataset *ds) { return ds ? ds->batch_size : 0; }

ich_status ich_dataset_sample_shape(const ich_dataset *ds, int32_t *channels, int32_t *rows,
                                    int32_t *columns, int32_t *labels)
{
    if (!ds)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_sample_shape: NULL dataset");
    if (channels)
        *channels = ds->channels;
    if (rows)
        *rows = ds->rows;
    if (columns)
        *columns = ds->columns;
    if (labels)
        *labels = ds->label_count;
    return ICH_OK;
}

ich_status ich_dataset_get(ich_dataset *ds, int64_t index, int augment, int64_t epoch,
                           float *image, size_t image_count, float *labels, size_t label_count)
{
    if (!ds || !image || epoch < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_get: %s",
                        epoch < 0 ? "negative epoch" : "NULL argument");
    if (index < 0 || index >= ds->drawn)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_get: index %lld not in 0..%lld",
                        (long long)index, (long long)ds->drawn - 1);
    index = sample_row(ds, index);
    if (image_count != ds->sample_floats || (labels && label_count != (size_t)ds->label_count))
        return ich_fail(ICH_ERR_SHAPE,
                        "ich_dataset_get: buffers hold %zu and %zu floats, a sample needs %zu "
                        "and %d",
                        image_count, label_count, ds->sample_floats, ds->label_count);
    ich_status st = ich_dataset_load_sample(ds, index, augment, epoch, image);
    if (st == ICH_OK && labels)
        memcpy(labels, ich_labels_values(ds->labels, index),
               (size_t)ds->label_count * sizeof *labels);
    return st;
}

/* ---- A range of samples, outside the epochs ------------------------------ */

typedef struct range_job {
    ich_dataset *ds;
    const int64_t *rows;
    float *images;
    ich_status *status;
} range_job;

static ich_status load_range_one(void *context, int64_t i, int worker)
{
    (void)worker;
    range_job *job = context;
    const ich_dataset *ds = job->ds;
    job->status[i] = ich_dataset_load_sample(ds, job->rows[i], 0, 0,
                                             job->images + (size_t)i * ds->sample_floats);
    if (job->status[i] != ICH_OK)
        log_failure_once(ds, job->rows[i]);
    return job->status[i];
}

ich_status ich_dataset_load_range(ich_dataset *ds, int64_t first, int32_t count, int32_t threads,
                                  float *images, float *labels, int64_t *rows, int32_t *loaded)
{
    *loaded = 0;
    if (first < 0 || count < 0 || first + count > ds->drawn)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "dataset: samples %lld..%lld of %lld",
                        (long long)first, (long long)(first + count), (long long)ds->drawn);
    ich_status *status = calloc((size_t)(count ? count : 1), sizeof *status);
    if (!status)
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    for (int32_t i = 0; i < count; i++)
        rows[i] = sample_row(ds, first + i);
    range_job job = {ds, rows, images, status};
    ich_status st = ich_parallel_for(count, threads > 0 ? threads : 1, load_range_one, &job,
                                     NULL, NULL, "dataset: loading", NULL);
    int32_t k = 0;
    for (int32_t i = 0; st == ICH_OK && i < count; i++) {
        if (status[i] != ICH_OK)
            continue;
        if (k != i)
            memmove(images + (size_t)k * ds->sample_floats, images + (size_t)i * ds->sample_floats,
                    ds->sample_floats * sizeof *images);
        memcpy(labels + (size_t)k * ds->label_count, ich_labels_values(ds->labels, rows[i]),
               (size_t)ds->label_count * sizeof *labels);
        rows[k++] = rows[i];
    }
    free(status);
    *loaded = k;
    return st;
}

int64_t ich_dataset_left_at_open(const ich_dataset *ds)
{
    return ds->left_at_open;
}

/* ---- Epochs and batches ------------------------------------------------ */

/* Called with the lock held (or without workers). */
static void begin_epoch(ich_dataset *ds, int64_t epoch)
{
    for (int64_t i = 0; i < ds->drawn; i++)
        ds->order[i] = sample_row(ds, i);
    if (ds->shuffle) {
        /* b = UINT64_MAX: a stream no sample's augmentation uses. */
        ich_rng rng = ich_rng_init(ds->seed, (uint64_t)epoch, UINT64_MAX);
        ich_rng_shuffle_i64(&rng, ds->order, ds->drawn);
    }
    ds->generation++;
    atomic_store(&ds->live_generation, ds->generation);
    ds->epoch = epoch;
    ds->consumed = ds->assigned = 0;
    ds->started = 1;
    /* Ready batches of the old epoch are dropped; those still loading are
     * dropped by their worker when it finishes. */
    for (int32_t i = 0; i < ds->slot_count; i++)
        if (ds->slots[i].state == SLOT_READY)
            ds->slots[i].state = SLOT_FREE;
}

ich_status ich_dataset_start_epoch(ich_dataset *ds, int64_t epoch)
{
    if (!ds || epoch < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_start_epoch: %s",
                        ds ? "negative epoch" : "NULL dataset");
    pthread_mutex_lock(&ds->lock);
    begin_epoch(ds, epoch);
    pthread_cond_broadcast(&ds->work);
    pthread_mutex_unlock(&ds->lock);
    return ICH_OK;
}

/* Abandon the current epoch (the lock held): batches being loaded are
 * dropped by their workers (generation), ready ones here; the next batch
 * asked for starts epoch 0 unless an epoch is started first. */
static void abandon_epoch(ich_dataset *ds)
{
    ds->generation++;
    atomic_store(&ds->live_generation, ds->generation);
    ds->started = 0;
    ds->consumed = ds->assigned = 0;
    for (int32_t i = 0; i < ds->slot_count; i++)
        if (ds->slots[i].state == SLOT_READY)
            ds->slots[i].state = SLOT_FREE;
}

ich_status ich_dataset_set_positive_only(ich_dataset *ds, const char *column)
{
    if (!ds)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_set_positive_only: NULL dataset");
    int64_t *rows = NULL, count = ds->length;
    char *name = NULL;
    if (column) {
        int32_t c = ich_labels_find_column(ds->labels, column);
        if (c < 0) {
            char names[512] = "";
            for (int32_t k = 0; k < ds->label_count; k++) {
                size_t used = strlen(names);
                snprintf(names + used, sizeof names - used, "%s%s", k ? ", " : "",
                         ich_labels_column_name(ds->labels, k));
            }
            return ich_fail(ICH_ERR_NOT_FOUND,
                            "ich_dataset_set_positive_only: the dataset has no label column "
                            "\"%s\" (its columns: %s)", column, names);
        }
        rows = malloc((ds->length ? (size_t)ds->length : 1) * sizeof *rows);
        name = strdup(column);
        if (!rows || !name) {
            free(rows);
            free(name);
            return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
        }
        count = 0;
        for (int64_t r = 0; r < ds->length; r++)
            if (ich_labels_values(ds->labels, r)[c] >= 0.5f)
                rows[count++] = r;
    }
    pthread_mutex_lock(&ds->lock);
    abandon_epoch(ds);
    free(ds->drawn_rows);
    free(ds->positive_column);
    ds->drawn_rows = rows;
    ds->positive_column = name;
    ds->drawn = count;
    count_batches(ds);
    pthread_mutex_unlock(&ds->lock);
    return ICH_OK;
}

ich_status ich_dataset_set_shard(ich_dataset *ds, int32_t rank, int32_t count)
{
    if (!ds || count < 1 || rank < 0 || rank >= count)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "dataset shard: rank %d of %d%s", rank, count,
                        ds ? "" : " of a NULL dataset");
    pthread_mutex_lock(&ds->lock);
    abandon_epoch(ds);
    ds->shard_rank = rank;
    ds->shard_count = count;
    pthread_mutex_unlock(&ds->lock);
    return ICH_OK;
}

const char *ich_dataset_positive_only(const ich_dataset *ds)
{
    return ds ? ds->positive_column : NULL;
}

/* Whether one more batch is wanted: the next non-empty one, or with a
 * shard the next one whatever its count (`taken`: one was taken). */
static int wants_batch(const ich_dataset *ds, int32_t count, int taken)
{
    return ds->consumed < ds->batches && (ds->shard_count > 1 ? !taken : count == 0);
}

/* Without workers: load the next non-empty batch on this thread. */
static void next_batch_here(ich_dataset *ds, float *images, float *labels, int32_t *count,
                            int64_t *rows)
{
    *count = 0;
    for (int taken = 0; wants_batch(ds, *count, taken); taken = 1) {
        int32_t n = batch_rows(ds, ds->consumed, rows);
        load_batch(ds, rows, n, ds->epoch, ds->generation, images, labels, count);
        ds->consumed++;
    }
}

/* With workers: wait for the next non-empty batch and copy it out. */
static void next_batch_pooled(ich_dataset *ds, float *images, float *labels, int32_t *count,
                              int64_t *rows)
{
    *count = 0;
    pthread_mutex_lock(&ds->lock);
    for (int taken = 0; wants_batch(ds, *count, taken); taken = 1) {
        const int64_t b = ds->consumed;
        dataset_slot *slot = &ds->slots[b % ds->slot_count];
        while (!(slot->state == SLOT_READY && slot->batch == b &&
                 slot->generation == ds->generation))
            pthread_cond_wait(&ds->ready, &ds->lock);
        slot->state = SLOT_TAKEN;
        pthread_mutex_unlock(&ds->lock);
        *count = slot->count;
        memcpy(images, slot->images, (size_t)*count * ds->sample_floats * sizeof *images);
        memcpy(labels, slot->labels, (size_t)*count * ds->label_count * sizeof *labels);
        memcpy(rows, slot->rows, (size_t)*count * sizeof *rows);
        pthread_mutex_lock(&ds->lock);
        slot->state = SLOT_FREE;
        ds->consumed++;
        pthread_cond_broadcast(&ds->work);
    }
    pthread_mutex_unlock(&ds->lock);
}

ich_status ich_dataset_next_batch(ich_dataset *ds, float *images, size_t image_count,
                                  float *labels, size_t label_count, int32_t *count,
                                  int64_t *rows)
{
    if (count)
        *count = 0;
    if (!ds || !images || !labels || !count)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_dataset_next_batch: NULL argument");
    const size_t want_images = (size_t)ds->batch_size * ds->sample_floats;
    const size_t want_labels = (size_t)ds->batch_size * ds->label_count;
    if (image_count != want_images || label_count != want_labels)
        return ich_fail(ICH_ERR_SHAPE,
                        "ich_dataset_next_batch: buffers hold %zu and %zu floats, a batch of %d "
                        "needs %zu and %zu",
                        image_count, label_count, ds->batch_size, want_images, want_labels);
    int64_t *indices = rows ? rows : malloc((size_t)ds->batch_size * sizeof *indices);
    if (!indices)
        return ich_fail(ICH_ERR_NO_MEMORY, "dataset: out of memory");
    if (!ds->started)
        ich_dataset_start_epoch(ds, 0);
    if (ds->workers == 0)
        next_batch_here(ds, images, labels, count, indices);
    else
        next_batch_pooled(ds, images, labels, count, indices);
    if (!rows)
        free(indices);
    return ICH_OK;
}
