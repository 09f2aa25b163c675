/* The phantom dataset: options, names and UIDs, and writing the DICOM files
 * and CSVs. The drawing itself is in draw.c. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "core/fileutil.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "ich/dicom.h"
#include "phantom/phantom_internal.h"

#define UID_ROOT "1.2.826.0.1.3680043.10.1234."
#define MAX_PATIENTS 100000
#define MAX_STUDIES 100
#define MAX_SLICES 1000

static const char *const SUBTYPES[6] = {"any", "epidural", "intraparenchymal",
                                        "intraventricular", "subarachnoid", "subdural"};

void (ich_phantom_options_init)(ich_phantom_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_phantom_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->patients = 20;
    options->studies_per_patient = 1;
    options->slices = 24;
    options->rows = 512;
    options->columns = 512;
    options->prevalence = 0.5;
    options->multiple = 0.25;
    options->size_min = 0.4;
    options->size_max = 1.0;
    options->noise = 6.0;
    options->layout = ICH_PHANTOM_FLAT;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_phantom_options, progress_user));
}

static int finite_in(double v, double lo, double hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

/* Check the options (NULL: the defaults) and copy them into *out. */
static ich_status check_options(const ich_phantom_options *in, ich_phantom_options *out)
{
    ich_phantom_options_init(out);
    ich_status st = ich_options_merge(out, sizeof *out, in,
                                      ICH_OPTIONS_V1_SIZE(ich_phantom_options, progress_user),
                                      "phantom");
    if (st != ICH_OK)
        return st;
    const ich_phantom_options *o = out;
    if (o->patients < 1 || o->patients > MAX_PATIENTS)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: patients must be 1..%d, got %d",
                        MAX_PATIENTS, (int)o->patients);
    if (o->studies_per_patient < 1 || o->studies_per_patient > MAX_STUDIES)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "phantom: studies_per_patient must be 1..%d, got %d", MAX_STUDIES,
                        (int)o->studies_per_patient);
    if (o->slices < 1 || o->slices > MAX_SLICES)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: slices must be 1..%d, got %d",
                        MAX_SLICES, (int)o->slices);
    if (o->rows < 16 || o->rows > 4096 || o->columns < 16 || o->columns > 4096)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "phantom: rows and columns must be 16..4096, got %dx%d", (int)o->rows,
                        (int)o->columns);
    if (!finite_in(o->prevalence, 0, 1) || !finite_in(o->multiple, 0, 1))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "phantom: prevalence and multiple must be 0..1, got %g and %g",
                        o->prevalence, o->multiple);
    if (!finite_in(o->size_min, 0.05, 2) || !finite_in(o->size_max, 0.05, 2) ||
        o->size_min > o->size_max)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "phantom: need 0.05 <= size_min <= size_max <= 2, got %g and %g",
                        o->size_min, o->size_max);
    if (!finite_in(o->noise, 0, 500))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: noise must be 0..500 HU, got %g",
                        o->noise);
    for (int k = 0; k < 5; k++)
        if (!finite_in(o->type_weights[k], 0, 1e9))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "phantom: type_weights[%d] must be >= 0 and finite, got %g", k,
                            o->type_weights[k]);
    if (o->layout != ICH_PHANTOM_FLAT && o->layout != ICH_PHANTOM_TREE)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: layout must be FLAT (0) or TREE "
                        "(1), got %d", (int)o->layout);
    if (o->vary_intercept != 0 && o->vary_intercept != 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: vary_intercept must be 0 or 1, got %d",
                        (int)o->vary_intercept);
    if (o->threads < 0 || o->threads > 1024)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: threads must be 0..1024, got %d",
                        (int)o->threads);
    return ICH_OK;
}

/* ---- Names and UIDs ---------------------------------------------------- */

enum { ID_PATIENT = 0, ID_STUDY = 1, ID_SERIES = 2, ID_IMAGE = 3 };

/* A 40-bit number for "ID_<10 hex digits>" names. Every step is a bijection
 * of 40-bit numbers, so different (kind, index) pairs never share a name. */
static uint64_t id40(uint64_t seed, unsigned kind, uint64_t index)
{
    const uint64_t mask = (1ull << 40) - 1;
    uint64_t key = ich_rng_init(seed, 0, 0).state;
    uint64_t x = ((uint64_t)kind << 38 | index) & mask; /* kind 0..3, index < 2^38 */
    x = (x + key) & mask;
    for (int round = 0; round < 3; round++) {
        x ^= x >> 19;
        x = (x * 0x5DEECE66Dull) & mask; /* odd multiplier: invertible */
        x ^= x >> 23;
        x = (x + (key >> 24)) & mask;
    }
    return x;
}

static void make_id(char *out, size_t size, uint64_t seed, unsigned kind, uint64_t index)
{
    snprintf(out, size, "ID_%010" PRIx64, id40(seed, kind, index));
}

/* The names of one slice. */
typedef struct names {
    char patient[16], study[16], series[16], image[16];
    char study_uid[65], series_uid[65], sop_uid[65];
} names;

/* root.<seed>.<patient+1>.<study+1>[.1[.<slice+1>]]: at most 58 characters
 * (a seed of 10^12 or more is replaced by a 40-bit hash of it). */
static void make_names(const ich_phantom_options *o, int32_t p, int32_t s, int32_t k, names *n)
{
    uint64_t series = (uint64_t)p * o->studies_per_patient + s;
    uint64_t image = series * o->slices + k;
    make_id(n->patient, sizeof n->patient, o->seed, ID_PATIENT, (uint64_t)p);
    make_id(n->study, sizeof n->study, o->seed, ID_STUDY, series);
    make_id(n->series, sizeof n->series, o->seed, ID_SERIES, series);
    make_id(n->image, sizeof n->image, o->seed, ID_IMAGE, image);
    uint64_t seed = o->seed < 1000000000000ull ? o->seed : id40(o->seed, 0, 0);
    unsigned pp = (unsigned)p + 1, ss = (unsigned)s + 1, kk = (unsigned)k + 1;
    snprintf(n->study_uid, sizeof n->study_uid, UID_ROOT "%" PRIu64 ".%u.%u", seed, pp, ss);
    snprintf(n->series_uid, sizeof n->series_uid, UID_ROOT "%" PRIu64 ".%u.%u.1", seed, pp, ss);
    snprintf(n->sop_uid, sizeof n->sop_uid, UID_ROOT "%" PRIu64 ".%u.%u.1.%u", seed, pp, ss,
             kk % 10000);
}

/* ---- One slice in memory ----------------------------------------------- */

static void labels_from_pixels(const ich_phantom_options *o, const int64_t blood[5],
                               uint8_t labels[6])
{
    int64_t min = ich_phantom_min_pixels(o);
    labels[0] = 0;
    for (int k = 0; k < 5; k++) {
        labels[k + 1] = blood[k] >= min;
        labels[0] |= labels[k + 1];
    }
}

/* The options and a slice's indexes and output buffer (`what`, `count`
 * values: one per pixel), for ich_phantom_slice and ich_phantom_tissues. */
static ich_status check_slice_args(const ich_phantom_options *options, int32_t patient,
                                   int32_t study, int32_t slice, const void *out, size_t count,
                                   const char *what, ich_phantom_options *o)
{
    ich_status st = check_options(options, o);
    if (st != ICH_OK)
        return st;
    if (!out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: %s is NULL", what);
    if (patient < 0 || patient >= o->patients || study < 0 || study >= o->studies_per_patient ||
        slice < 0 || slice >= o->slices)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "phantom: slice (%d, %d, %d) is outside %d patients x %d studies x "
                        "%d slices", (int)patient, (int)study, (int)slice, (int)o->patients,
                        (int)o->studies_per_patient, (int)o->slices);
    if (count != (size_t)o->rows * (size_t)o->columns)
        return ich_fail(ICH_ERR_SHAPE, "phantom: %s holds %zu values, need %d x %d", what, count,
                        (int)o->rows, (int)o->columns);
    return ICH_OK;
}

ich_status ich_phantom_slice(const ich_phantom_options *options, int32_t patient,
                             int32_t study, int32_t slice, float *hu, size_t hu_count,
                             float *labels, char *id, size_t id_size)
{
    ich_phantom_options o;
    ich_status st = check_slice_args(options, patient, study, slice, hu, hu_count, "hu", &o);
    if (st != ICH_OK)
        return st;
    if (id && id_size < 16)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: id needs 16 bytes, got %zu",
                        id_size);
    int16_t *stored = malloc(hu_count * sizeof *stored);
    if (!stored)
        return ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
    int64_t blood[5];
    double intercept = 0;
    st = ich_phantom_draw(&o, patient, study, slice, stored, NULL, blood, &intercept);
    if (st == ICH_OK) {
        for (size_t i = 0; i < hu_count; i++)
            hu[i] = (float)((double)stored[i] + intercept);
        uint8_t l[6];
        labels_from_pixels(&o, blood, l);
        for (int k = 0; labels && k < 6; k++)
            labels[k] = l[k];
        if (id) {
            names n;
            make_names(&o, patient, study, slice, &n);
            snprintf(id, id_size, "%s", n.image);
        }
    }
    free(stored);
    return st;
}

ich_status ich_phantom_tissues(const ich_phantom_options *options, int32_t patient,
                               int32_t study, int32_t slice, uint8_t *tissue, size_t count)
{
    ich_phantom_options o;
    ich_status st = check_slice_args(options, patient, study, slice, tissue, count, "tissue", &o);
    if (st != ICH_OK)
        return st;
    int64_t blood[5];
    return ich_phantom_draw(&o, patient, study, slice, NULL, tissue, blood, NULL);
}

/* ---- Writing the dataset ----------------------------------------------- */

typedef struct job {
    const ich_phantom_options *o;
    const char *dir;
    uint8_t (*labels)[6]; /* one row per slice, in item order */
    int16_t **buffers;    /* one pixel buffer per worker */
    pthread_mutex_t lock;
    char first_error[512];
} job;

static void slice_of_item(const ich_phantom_options *o, int64_t item, int32_t *p, int32_t *s,
                          int32_t *k)
{
    *k = (int32_t)(item % o->slices);
    int64_t series = item / o->slices;
    *s = (int32_t)(series % o->studies_per_patient);
    *p = (int32_t)(series / o->studies_per_patient);
}

/* images/ID_x.dcm or images/<patient>/<series>/ID_x.dcm, in new memory. */
static char *image_path(const job *j, const names *n)
{
    char rel[128];
    if (j->o->layout == ICH_PHANTOM_TREE)
        snprintf(rel, sizeof rel, "images/%s/%s/%s.dcm", n->patient, n->series, n->image);
    else
        snprintf(rel, sizeof rel, "images/%s.dcm", n->image);
    return ich_path_join(j->dir, rel);
}

static ich_status write_slice(const job *j, int32_t p, int32_t s, int32_t k, int16_t *pixels,
                              uint8_t labels[6])
{
    const ich_phantom_options *o = j->o;
    int64_t blood[5];
    double intercept = 0;
    ich_status st = ich_phantom_draw(o, p, s, k, pixels, NULL, blood, &intercept);
    if (st != ICH_OK)
        return st;
    labels_from_pixels(o, blood, labels);
    names n;
    make_names(o, p, s, k, &n);
    char *path = image_path(j, &n);
    if (!path)
        return ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
    double mm = ich_phantom_spacing(o), thick = ich_phantom_thickness(o);
    ich_ct_slice ct = {0};
    ct.size = sizeof ct;
    ct.rows = o->rows;
    ct.columns = o->columns;
    ct.pixels = pixels;
    ct.rescale_slope = 1.0;
    ct.rescale_intercept = intercept; /* -1024 as in the RSNA data, or vary_intercept's */
    ct.pixel_spacing[0] = ct.pixel_spacing[1] = mm;
    ct.slice_thickness = thick;
    ct.image_position[0] = -0.5 * o->columns * mm;
    ct.image_position[1] = -0.5 * o->rows * mm;
    ct.image_position[2] = k * thick;
    ct.instance_number = k + 1;
    ct.window_center = 40; /* the brain window */
    ct.window_width = 80;
    ct.patient_id = n.patient;
    ct.study_instance_uid = n.study_uid;
    ct.series_instance_uid = n.series_uid;
    ct.sop_instance_uid = n.sop_uid;
    st = ich_dicom_write_ct(path, &ct);
    free(path);
    return st;
}

static ich_status write_item(void *context, int64_t item, int worker)
{
    job *j = context;
    const ich_phantom_options *o = j->o;
    if (!j->buffers[worker]) {
        j->buffers[worker] = malloc((size_t)o->rows * o->columns * sizeof(int16_t));
        if (!j->buffers[worker])
            return ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
    }
    int32_t p, s, k;
    slice_of_item(o, item, &p, &s, &k);
    ich_status st = write_slice(j, p, s, k, j->buffers[worker], j->labels[item]);
    if (st != ICH_OK) {
        pthread_mutex_lock(&j->lock);
        if (!j->first_error[0])
            snprintf(j->first_error, sizeof j->first_error, "%s", ich_last_error());
        pthread_mutex_unlock(&j->lock);
        ich_log(ICH_LOG_WARNING, "phantom: %s", ich_last_error());
    }
    return st;
}

/* The folders: dir/images, and in the tree layout one per patient and series. */
static ich_status make_folders(const ich_phantom_options *o, const char *dir)
{
    char *images = ich_path_join(dir, "images");
    if (!images)
        return ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
    ich_status st = ich_make_dirs(images);
    for (int32_t p = 0; st == ICH_OK && o->layout == ICH_PHANTOM_TREE && p < o->patients; p++) {
        for (int32_t s = 0; st == ICH_OK && s < o->studies_per_patient; s++) {
            names n;
            make_names(o, p, s, 0, &n);
            char rel[64];
            snprintf(rel, sizeof rel, "%s/%s", n.patient, n.series);
            char *sub = ich_path_join(images, rel);
            st = sub ? ich_make_dirs(sub) : ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
            free(sub);
        }
    }
    free(images);
    return st;
}

static ich_status write_csv(const char *dir, const char *name, ich_buf *buf)
{
    char *path = ich_path_join(dir, name);
    ich_status st;
    if (!path || buf->failed)
        st = ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory writing %s", name);
    else
        st = ich_write_file_atomic(path, buf->data ? buf->data : "", buf->length, 0);
    free(path);
    ich_buf_free(buf);
    return st;
}

/* labels.csv, metadata.csv and scans.csv from the slices' labels. */
static ich_status write_csvs(const ich_phantom_options *o, const char *dir,
                             uint8_t (*labels)[6])
{
    ich_buf lab = {0}, meta = {0}, scans = {0};
    double thick = ich_phantom_thickness(o);
    ich_buf_printf(&lab, "ID,Label\n");
    ich_buf_printf(&meta, "ID,patient,study,series,instance,z\n");
    ich_buf_printf(&scans, "patient,scan");
    for (int c = 0; c < 6; c++)
        ich_buf_printf(&scans, ",%s", SUBTYPES[c]);
    ich_buf_printf(&scans, "\n");
    int64_t item = 0;
    for (int32_t p = 0; p < o->patients; p++) {
        for (int32_t s = 0; s < o->studies_per_patient; s++) {
            uint8_t scan[6] = {0};
            names n;
            for (int32_t k = 0; k < o->slices; k++, item++) {
                make_names(o, p, s, k, &n);
                for (int c = 0; c < 6; c++) {
                    ich_buf_printf(&lab, "%s_%s,%d\n", n.image, SUBTYPES[c], labels[item][c]);
                    scan[c] |= labels[item][c];
                }
                ich_buf_printf(&meta, "%s,%s,%s,%s,%d,%.4f\n", n.image, n.patient, n.study,
                               n.series, (int)k + 1, k * thick);
            }
            ich_buf_printf(&scans, "%s,%s", n.patient, n.series);
            for (int c = 0; c < 6; c++)
                ich_buf_printf(&scans, ",%d", scan[c]);
            ich_buf_printf(&scans, "\n");
        }
    }
    ich_status st = write_csv(dir, "metadata.csv", &meta);
    ich_status st2 = write_csv(dir, "scans.csv", &scans);
    /* labels.csv last: its presence marks a whole dataset. */
    ich_status st3 = st == ICH_OK && st2 == ICH_OK ? write_csv(dir, "labels.csv", &lab)
                                                    : (ich_buf_free(&lab), ICH_OK);
    return st != ICH_OK ? st : st2 != ICH_OK ? st2 : st3;
}

ich_status ich_phantom_write(const char *dir, const ich_phantom_options *options,
                             int64_t *slices_written)
{
    if (slices_written)
        *slices_written = 0;
    if (!dir || !*dir)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "phantom: dir is NULL or empty");
    ich_phantom_options o;
    ich_status st = check_options(options, &o);
    if (st != ICH_OK)
        return st;
    st = make_folders(&o, dir);
    if (st != ICH_OK)
        return st;
    int64_t count = (int64_t)o.patients * o.studies_per_patient * o.slices;
    int threads = ich_thread_count(o.threads, count);
    job j = {0};
    j.o = &o;
    j.dir = dir;
    j.labels = calloc((size_t)count, sizeof *j.labels);
    j.buffers = calloc((size_t)threads, sizeof *j.buffers);
    if (!j.labels || !j.buffers) {
        free(j.labels);
        free(j.buffers);
        return ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
    }
    pthread_mutex_init(&j.lock, NULL);
    int64_t failed = 0;
    st = ich_parallel_for(count, threads, write_item, &j, o.progress, o.progress_user,
                          "phantom", &failed);
    if (st == ICH_OK && failed > 0)
        st = ich_fail(ICH_ERR_IO, "phantom: %lld of %lld slices not written in %s; first: %s",
                      (long long)failed, (long long)count, dir, j.first_error);
    if (st == ICH_OK)
        st = write_csvs(&o, dir, j.labels);
    if (st == ICH_OK && slices_written)
        *slices_written = count;
    for (int w = 0; w < threads; w++)
        free(j.buffers[w]);
    free(j.buffers);
    free(j.labels);
    pthread_mutex_destroy(&j.lock);
    return st;
}
