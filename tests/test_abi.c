/* The ABI of libich's public structs (issue 13).
 *
 * 1. Layout: for every public struct with a `size` field, its first
 *    version's size and every field's offset against constants written
 *    here (LP64: x86-64, aarch64). A change that moves a field fails here
 *    before it breaks a program built against an older header.
 * 2. Old sizes: every public function that takes such a struct is called
 *    with the struct of its first version (size = that version's size), as
 *    a program built against the first header passes it. The struct sits
 *    at the very end of a readable page, followed by an inaccessible one,
 *    so that any read or write past its size faults; the few bytes between
 *    its size and the next 8-byte boundary (its tail padding) hold a canary
 *    that must survive. Each call must work.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* ---- 1. Layouts ------------------------------------------------------------- */

#define V1_SIZE(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))
#define FIELD(type, field, offset) {#field, offsetof(type, field), offset}
/* A struct whose first version ended at `last` and was `v1` bytes. */
#define LAYOUT(type, last, v1) #type, sizeof(type), V1_SIZE(type, last), v1

typedef struct field_offset {
    const char *name;
    size_t actual, expected;
} field_offset;

typedef struct struct_layout {
    const char *name;
    size_t size;               /* sizeof today */
    size_t v1_actual;          /* its first version's size, from offsetof */
    size_t v1_expected;        /* ... and as written here */
    const field_offset *fields; /* ends with a NULL name */
} struct_layout;

static const struct_layout layouts[] = {
    {LAYOUT(ich_augment_choices, blur_sigma, 104),
     (const field_offset[]){
        FIELD(ich_augment_choices, size, 0),
        FIELD(ich_augment_choices, hflip, 8),
        FIELD(ich_augment_choices, vflip, 12),
        FIELD(ich_augment_choices, rotate, 16),
        FIELD(ich_augment_choices, degrees, 24),
        FIELD(ich_augment_choices, elastic, 32),
        FIELD(ich_augment_choices, elastic_alpha, 40),
        FIELD(ich_augment_choices, elastic_sigma, 48),
        FIELD(ich_augment_choices, elastic_seed, 56),
        FIELD(ich_augment_choices, brightness_contrast, 64),
        FIELD(ich_augment_choices, contrast, 72),
        FIELD(ich_augment_choices, brightness, 80),
        FIELD(ich_augment_choices, blur, 88),
        FIELD(ich_augment_choices, blur_sigma, 96),
        {NULL, 0, 0}}},
    {LAYOUT(ich_augment_offline_options, progress_user, 48),
     (const field_offset[]){
        FIELD(ich_augment_offline_options, size, 0),
        FIELD(ich_augment_offline_options, target, 8),
        FIELD(ich_augment_offline_options, seed, 16),
        FIELD(ich_augment_offline_options, threads, 24),
        FIELD(ich_augment_offline_options, progress, 32),
        FIELD(ich_augment_offline_options, progress_user, 40),
        {NULL, 0, 0}}},
    {LAYOUT(ich_dataset_options, extension, 80),
     (const field_offset[]){
        FIELD(ich_dataset_options, size, 0),
        FIELD(ich_dataset_options, window, 8),
        FIELD(ich_dataset_options, augment, 16),
        FIELD(ich_dataset_options, batch_size, 24),
        FIELD(ich_dataset_options, shuffle, 28),
        FIELD(ich_dataset_options, drop_last, 32),
        FIELD(ich_dataset_options, seed, 40),
        FIELD(ich_dataset_options, workers, 48),
        FIELD(ich_dataset_options, prefetch, 52),
        FIELD(ich_dataset_options, neighbors, 56),
        FIELD(ich_dataset_options, metadata_csv, 64),
        FIELD(ich_dataset_options, extension, 72),
        FIELD(ich_dataset_options, model, 80),
        {NULL, 0, 0}}},
    {LAYOUT(ich_dicom_info, columns, 16),
     (const field_offset[]){
        FIELD(ich_dicom_info, size, 0),
        FIELD(ich_dicom_info, rows, 8),
        FIELD(ich_dicom_info, columns, 12),
        FIELD(ich_dicom_info, bits_allocated, 16),
        FIELD(ich_dicom_info, bits_stored, 20),
        FIELD(ich_dicom_info, pixel_representation, 24),
        FIELD(ich_dicom_info, sample_bits, 28),
        FIELD(ich_dicom_info, monochrome1, 32),
        FIELD(ich_dicom_info, instance_number, 36),
        FIELD(ich_dicom_info, rescale_slope, 40),
        FIELD(ich_dicom_info, rescale_intercept, 48),
        FIELD(ich_dicom_info, pixel_spacing, 56),
        FIELD(ich_dicom_info, slice_thickness, 72),
        FIELD(ich_dicom_info, image_position, 80),
        FIELD(ich_dicom_info, window_center, 104),
        FIELD(ich_dicom_info, window_width, 112),
        FIELD(ich_dicom_info, photometric, 120),
        FIELD(ich_dicom_info, modality, 137),
        FIELD(ich_dicom_info, transfer_syntax, 154),
        FIELD(ich_dicom_info, sop_instance_uid, 219),
        FIELD(ich_dicom_info, series_instance_uid, 284),
        FIELD(ich_dicom_info, study_instance_uid, 349),
        FIELD(ich_dicom_info, patient_id, 414),
        {NULL, 0, 0}}},
    {LAYOUT(ich_dicom_limits, max_file_bytes, 16),
     (const field_offset[]){
        FIELD(ich_dicom_limits, size, 0),
        FIELD(ich_dicom_limits, max_file_bytes, 8),
        FIELD(ich_dicom_limits, max_pixels, 16),
        FIELD(ich_dicom_limits, max_decoded_bytes, 24),
        {NULL, 0, 0}}},
    {LAYOUT(ich_ct_slice, sop_instance_uid, 144),
     (const field_offset[]){
        FIELD(ich_ct_slice, size, 0),
        FIELD(ich_ct_slice, rows, 8),
        FIELD(ich_ct_slice, columns, 12),
        FIELD(ich_ct_slice, pixels, 16),
        FIELD(ich_ct_slice, rescale_slope, 24),
        FIELD(ich_ct_slice, rescale_intercept, 32),
        FIELD(ich_ct_slice, pixel_spacing, 40),
        FIELD(ich_ct_slice, slice_thickness, 56),
        FIELD(ich_ct_slice, image_position, 64),
        FIELD(ich_ct_slice, instance_number, 88),
        FIELD(ich_ct_slice, window_center, 96),
        FIELD(ich_ct_slice, window_width, 104),
        FIELD(ich_ct_slice, patient_id, 112),
        FIELD(ich_ct_slice, study_instance_uid, 120),
        FIELD(ich_ct_slice, series_instance_uid, 128),
        FIELD(ich_ct_slice, sop_instance_uid, 136),
        {NULL, 0, 0}}},
    {LAYOUT(ich_sample_options, negatives, 28),
     (const field_offset[]){
        FIELD(ich_sample_options, size, 0),
        FIELD(ich_sample_options, per_label, 8),
        FIELD(ich_sample_options, seed, 16),
        FIELD(ich_sample_options, negatives, 24),
        {NULL, 0, 0}}},
    {LAYOUT(ich_select_options, progress_user, 40),
     (const field_offset[]){
        FIELD(ich_select_options, size, 0),
        FIELD(ich_select_options, mode, 8),
        FIELD(ich_select_options, threads, 12),
        FIELD(ich_select_options, extension, 16),
        FIELD(ich_select_options, progress, 24),
        FIELD(ich_select_options, progress_user, 32),
        {NULL, 0, 0}}},
    {LAYOUT(ich_split_options, stratify, 44),
     (const field_offset[]){
        FIELD(ich_split_options, size, 0),
        FIELD(ich_split_options, ratios, 8),
        FIELD(ich_split_options, seed, 32),
        FIELD(ich_split_options, stratify, 40),
        {NULL, 0, 0}}},
    {LAYOUT(ich_metrics_at, defined, 92),
     (const field_offset[]){
        FIELD(ich_metrics_at, size, 0),
        FIELD(ich_metrics_at, threshold, 8),
        FIELD(ich_metrics_at, tn, 16),
        FIELD(ich_metrics_at, fp, 24),
        FIELD(ich_metrics_at, fn, 32),
        FIELD(ich_metrics_at, tp, 40),
        FIELD(ich_metrics_at, accuracy, 48),
        FIELD(ich_metrics_at, precision, 56),
        FIELD(ich_metrics_at, recall, 64),
        FIELD(ich_metrics_at, specificity, 72),
        FIELD(ich_metrics_at, f1, 80),
        FIELD(ich_metrics_at, defined, 88),
        {NULL, 0, 0}}},
    {LAYOUT(ich_metrics_class_result, defined, 276),
     (const field_offset[]){
        FIELD(ich_metrics_class_result, size, 0),
        FIELD(ich_metrics_class_result, positives, 8),
        FIELD(ich_metrics_class_result, negatives, 16),
        FIELD(ich_metrics_class_result, at_half, 24),
        FIELD(ich_metrics_class_result, at_youden, 120),
        FIELD(ich_metrics_class_result, youden_threshold, 216),
        FIELD(ich_metrics_class_result, youden_j, 224),
        FIELD(ich_metrics_class_result, auc, 232),
        FIELD(ich_metrics_class_result, auc_low, 240),
        FIELD(ich_metrics_class_result, auc_high, 248),
        FIELD(ich_metrics_class_result, average_precision, 256),
        FIELD(ich_metrics_class_result, roc_points, 264),
        FIELD(ich_metrics_class_result, defined, 272),
        {NULL, 0, 0}}},
    {LAYOUT(ich_metrics_summary_result, defined, 76),
     (const field_offset[]){
        FIELD(ich_metrics_summary_result, size, 0),
        FIELD(ich_metrics_summary_result, samples, 8),
        FIELD(ich_metrics_summary_result, classes, 16),
        FIELD(ich_metrics_summary_result, accuracy_overall, 24),
        FIELD(ich_metrics_summary_result, bce, 32),
        FIELD(ich_metrics_summary_result, rsna_log_loss, 40),
        FIELD(ich_metrics_summary_result, macro_auc, 48),
        FIELD(ich_metrics_summary_result, macro_average_precision, 56),
        FIELD(ich_metrics_summary_result, macro_f1, 64),
        FIELD(ich_metrics_summary_result, defined, 72),
        {NULL, 0, 0}}},
    {LAYOUT(ich_metrics_options, confidence, 32),
     (const field_offset[]){
        FIELD(ich_metrics_options, size, 0),
        FIELD(ich_metrics_options, bootstrap, 8),
        FIELD(ich_metrics_options, seed, 16),
        FIELD(ich_metrics_options, confidence, 24),
        {NULL, 0, 0}}},
    {LAYOUT(ich_tensor_view, frozen, 88),
     (const field_offset[]){
        FIELD(ich_tensor_view, size, 0),
        FIELD(ich_tensor_view, name, 8),
        FIELD(ich_tensor_view, type, 16),
        FIELD(ich_tensor_view, ndim, 20),
        FIELD(ich_tensor_view, dims, 24),
        FIELD(ich_tensor_view, count, 56),
        FIELD(ich_tensor_view, data, 64),
        FIELD(ich_tensor_view, grad, 72),
        FIELD(ich_tensor_view, trainable, 80),
        FIELD(ich_tensor_view, frozen, 84),
        {NULL, 0, 0}}},
    {LAYOUT(ich_pretrained_report, tensor_user, 40),
     (const field_offset[]){
        FIELD(ich_pretrained_report, size, 0),
        FIELD(ich_pretrained_report, loaded, 8),
        FIELD(ich_pretrained_report, skipped, 12),
        FIELD(ich_pretrained_report, fresh, 16),
        FIELD(ich_pretrained_report, summed, 20),
        FIELD(ich_pretrained_report, tensor_fn, 24),
        FIELD(ich_pretrained_report, tensor_user, 32),
        {NULL, 0, 0}}},
    {LAYOUT(ich_optimizer_options, nesterov, 76),
     (const field_offset[]){
        FIELD(ich_optimizer_options, size, 0),
        FIELD(ich_optimizer_options, kind, 8),
        FIELD(ich_optimizer_options, lr, 16),
        FIELD(ich_optimizer_options, beta1, 24),
        FIELD(ich_optimizer_options, beta2, 32),
        FIELD(ich_optimizer_options, eps, 40),
        FIELD(ich_optimizer_options, weight_decay, 48),
        FIELD(ich_optimizer_options, momentum, 56),
        FIELD(ich_optimizer_options, dampening, 64),
        FIELD(ich_optimizer_options, nesterov, 72),
        {NULL, 0, 0}}},
    {LAYOUT(ich_schedule_options, t_max, 68),
     (const field_offset[]){
        FIELD(ich_schedule_options, size, 0),
        FIELD(ich_schedule_options, kind, 8),
        FIELD(ich_schedule_options, factor, 16),
        FIELD(ich_schedule_options, patience, 24),
        FIELD(ich_schedule_options, threshold, 32),
        FIELD(ich_schedule_options, min_lr, 40),
        FIELD(ich_schedule_options, maximize, 48),
        FIELD(ich_schedule_options, step_size, 52),
        FIELD(ich_schedule_options, gamma, 56),
        FIELD(ich_schedule_options, t_max, 64),
        {NULL, 0, 0}}},
    {LAYOUT(ich_phantom_options, progress_user, 144),
     (const field_offset[]){
        FIELD(ich_phantom_options, size, 0),
        FIELD(ich_phantom_options, seed, 8),
        FIELD(ich_phantom_options, patients, 16),
        FIELD(ich_phantom_options, studies_per_patient, 20),
        FIELD(ich_phantom_options, slices, 24),
        FIELD(ich_phantom_options, rows, 28),
        FIELD(ich_phantom_options, columns, 32),
        FIELD(ich_phantom_options, prevalence, 40),
        FIELD(ich_phantom_options, multiple, 48),
        FIELD(ich_phantom_options, size_min, 56),
        FIELD(ich_phantom_options, size_max, 64),
        FIELD(ich_phantom_options, noise, 72),
        FIELD(ich_phantom_options, type_weights, 80),
        FIELD(ich_phantom_options, layout, 120),
        FIELD(ich_phantom_options, threads, 124),
        FIELD(ich_phantom_options, progress, 128),
        FIELD(ich_phantom_options, progress_user, 136),
        FIELD(ich_phantom_options, vary_intercept, 144),
        {NULL, 0, 0}}},
    {LAYOUT(ich_evaluate_summary, left_out, 32),
     (const field_offset[]){
        FIELD(ich_evaluate_summary, size, 0),
        FIELD(ich_evaluate_summary, rows, 8),
        FIELD(ich_evaluate_summary, evaluated, 16),
        FIELD(ich_evaluate_summary, left_out, 24),
        {NULL, 0, 0}}},
    {LAYOUT(ich_evaluate_options, progress_user, 48),
     (const field_offset[]){
        FIELD(ich_evaluate_options, size, 0),
        FIELD(ich_evaluate_options, batch_size, 8),
        FIELD(ich_evaluate_options, workers, 12),
        FIELD(ich_evaluate_options, threshold, 16),
        FIELD(ich_evaluate_options, bootstrap, 20),
        FIELD(ich_evaluate_options, seed, 24),
        FIELD(ich_evaluate_options, progress, 32),
        FIELD(ich_evaluate_options, progress_user, 40),
        FIELD(ich_evaluate_options, window, 48),
        FIELD(ich_evaluate_options, summary, 56),
        {NULL, 0, 0}}},
    {LAYOUT(ich_epoch_stats, seconds, 64),
     (const field_offset[]){
        FIELD(ich_epoch_stats, size, 0),
        FIELD(ich_epoch_stats, epoch, 8),
        FIELD(ich_epoch_stats, train_loss, 16),
        FIELD(ich_epoch_stats, train_accuracy, 24),
        FIELD(ich_epoch_stats, val_loss, 32),
        FIELD(ich_epoch_stats, val_accuracy, 40),
        FIELD(ich_epoch_stats, lr, 48),
        FIELD(ich_epoch_stats, seconds, 56),
        FIELD(ich_epoch_stats, stage, 64),
        {NULL, 0, 0}}},
    {LAYOUT(ich_train_progress, stats, 72),
     (const field_offset[]){
        FIELD(ich_train_progress, size, 0),
        FIELD(ich_train_progress, phase, 8),
        FIELD(ich_train_progress, epoch, 12),
        FIELD(ich_train_progress, epochs, 16),
        FIELD(ich_train_progress, batch, 24),
        FIELD(ich_train_progress, batches, 32),
        FIELD(ich_train_progress, loss, 40),
        FIELD(ich_train_progress, accuracy, 48),
        FIELD(ich_train_progress, elapsed, 56),
        FIELD(ich_train_progress, stats, 64),
        FIELD(ich_train_progress, stage, 72),
        FIELD(ich_train_progress, stages, 76),
        {NULL, 0, 0}}},
    {LAYOUT(ich_train_options, progress_user, 120),
     (const field_offset[]){
        FIELD(ich_train_options, size, 0),
        FIELD(ich_train_options, epochs, 8),
        FIELD(ich_train_options, pos_weight, 16),
        FIELD(ich_train_options, balanced, 24),
        FIELD(ich_train_options, clip_norm, 32),
        FIELD(ich_train_options, schedule, 40),
        FIELD(ich_train_options, constant_lr, 48),
        FIELD(ich_train_options, patience, 52),
        FIELD(ich_train_options, min_delta, 56),
        FIELD(ich_train_options, restore_best, 64),
        FIELD(ich_train_options, warmup_epochs, 68),
        FIELD(ich_train_options, warmup_trainable, 72),
        FIELD(ich_train_options, cascade_mask, 80),
        FIELD(ich_train_options, checkpoint_dir, 88),
        FIELD(ich_train_options, resume, 96),
        FIELD(ich_train_options, progress, 104),
        FIELD(ich_train_options, progress_user, 112),
        FIELD(ich_train_options, staged, 120),
        FIELD(ich_train_options, stage_epochs, 124),
        FIELD(ich_train_options, finetune_lr_factor, 136),
        {NULL, 0, 0}}},
    {LAYOUT(ich_preprocess_options, progress_user, 32),
     (const field_offset[]){
        FIELD(ich_preprocess_options, size, 0),
        FIELD(ich_preprocess_options, threads, 8),
        FIELD(ich_preprocess_options, overwrite, 12),
        FIELD(ich_preprocess_options, progress, 16),
        FIELD(ich_preprocess_options, progress_user, 24),
        {NULL, 0, 0}}},
    {LAYOUT(ich_preprocess_summary, threads, 52),
     (const field_offset[]){
        FIELD(ich_preprocess_summary, size, 0),
        FIELD(ich_preprocess_summary, files, 8),
        FIELD(ich_preprocess_summary, converted, 16),
        FIELD(ich_preprocess_summary, existing, 24),
        FIELD(ich_preprocess_summary, failed, 32),
        FIELD(ich_preprocess_summary, skipped, 40),
        FIELD(ich_preprocess_summary, threads, 48),
        {NULL, 0, 0}}},
    {LAYOUT(ich_predict_options, progress_user, 56),
     (const field_offset[]){
        FIELD(ich_predict_options, size, 0),
        FIELD(ich_predict_options, window, 8),
        FIELD(ich_predict_options, threshold, 16),
        FIELD(ich_predict_options, batch_size, 20),
        FIELD(ich_predict_options, threads, 24),
        FIELD(ich_predict_options, format, 28),
        FIELD(ich_predict_options, stop_on_failure, 32),
        FIELD(ich_predict_options, progress, 40),
        FIELD(ich_predict_options, progress_user, 48),
        {NULL, 0, 0}}},
    {LAYOUT(ich_predict_summary, skipped, 40),
     (const field_offset[]){
        FIELD(ich_predict_summary, size, 0),
        FIELD(ich_predict_summary, files, 8),
        FIELD(ich_predict_summary, predicted, 16),
        FIELD(ich_predict_summary, failed, 24),
        FIELD(ich_predict_summary, skipped, 32),
        {NULL, 0, 0}}},
};

static void test_layouts(void **state)
{
    (void)state;
    if (sizeof(void *) != 8 || sizeof(long) != 8)
        skip(); /* the constants are LP64's */
    size_t count = 0;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        const struct_layout *l = &layouts[i];
        if (l->v1_actual != l->v1_expected)
            fail_msg("%s: first version is %zu bytes, expected %zu", l->name, l->v1_actual,
                     l->v1_expected);
        if (l->v1_actual > l->size)
            fail_msg("%s: first version larger than today's struct", l->name);
        assert_string_equal(l->fields[0].name, "size");
        for (const field_offset *f = l->fields; f->name; f++, count++)
            if (f->actual != f->expected)
                fail_msg("%s.%s at offset %zu, expected %zu: fields may only be appended",
                         l->name, f->name, f->actual, f->expected);
    }
    assert_true(count > 200);
}

/* ---- 2. Old sizes ----------------------------------------------------------- */

#define CANARY 0xa5

/* A struct of `size` bytes ending an accessible page, as described above. */
typedef struct guard {
    unsigned char *map;
    size_t map_size, size, room;
    unsigned char *s;
} guard;

/* The struct: `init` (size bytes, may be NULL: canary bytes) with its size
 * field set to `size`. */
static void *guard_open(guard *g, const void *init, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g->size = size;
    g->room = (size + 7) & ~(size_t)7;
    size_t pages = (g->room + page - 1) / page;
    g->map_size = (pages + 1) * page;
    g->map = mmap(NULL, g->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->map != MAP_FAILED);
    assert_int_equal(mprotect(g->map + pages * page, page, PROT_NONE), 0);
    memset(g->map, CANARY, pages * page);
    g->s = g->map + pages * page - g->room;
    if (init)
        memcpy(g->s, init, size);
    memcpy(g->s, &size, sizeof size);
    return g->s;
}

/* The canary after the struct must be intact; the size field must still
 * say `size` (the bytes written for an older caller). */
static void guard_close(guard *g, const char *what)
{
    for (size_t i = g->size; i < g->room; i++)
        if (g->s[i] != CANARY)
            fail_msg("%s: byte %zu past a %zu-byte struct was written", what, i, g->size);
    size_t size;
    memcpy(&size, g->s, sizeof size);
    if (size != g->size)
        fail_msg("%s: size is %zu after the call, expected %zu", what, size, g->size);
    munmap(g->map, g->map_size);
}

/* The first versions' sizes (test_layouts checks them against constants). */
#define OLD(type) (layout_v1(#type))
static size_t layout_v1(const char *name)
{
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (!strcmp(layouts[i].name, name))
            return layouts[i].v1_expected;
    fail_msg("no layout for %s", name);
    return 0;
}

#define OK(call) assert_int_equal((call), ICH_OK)

static void test_metrics_old_sizes(void **state)
{
    (void)state;
    ich_metrics *m = NULL;
    OK(ich_metrics_create(NULL, 0, 0, &m));
    const float scores[] = {0.9f, 0.1f, 0.8f, 0.2f, 0.7f, 0.3f, 0.6f, 0.4f, 0.2f, 0.9f, 0.1f, 0.8f};
    const float labels[] = {1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1};
    OK(ich_metrics_update(m, scores, labels, 2, 6));

    guard g;
    ich_metrics_options *o = guard_open(&g, NULL, OLD(ich_metrics_options));
    (ich_metrics_options_init)(o);
    assert_int_equal(o->bootstrap, 1000);
    o->bootstrap = 10;
    OK(ich_metrics_compute(m, o));
    guard_close(&g, "ich_metrics_options");

    ich_metrics_class_result full = {.size = sizeof full};
    OK(ich_metrics_class(m, 0, &full));
    ich_metrics_class_result *c = guard_open(&g, NULL, OLD(ich_metrics_class_result));
    OK(ich_metrics_class(m, 0, c));
    assert_true(c->auc == full.auc && c->at_half.tp == full.at_half.tp);
    assert_int_equal(c->at_half.size, sizeof(ich_metrics_at));
    assert_int_equal(c->defined, full.defined);
    guard_close(&g, "ich_metrics_class");
    /* below the first version: refused, nothing written */
    c = guard_open(&g, NULL, OLD(ich_metrics_class_result) - 4);
    assert_int_equal(ich_metrics_class(m, 0, c), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(c->positives, (int64_t)0xa5a5a5a5a5a5a5a5ull);
    guard_close(&g, "ich_metrics_class (too small)");

    ich_metrics_summary_result fs = {.size = sizeof fs};
    OK(ich_metrics_summary(m, &fs));
    ich_metrics_summary_result *s = guard_open(&g, NULL, OLD(ich_metrics_summary_result));
    OK(ich_metrics_summary(m, s));
    assert_true(s->macro_auc == fs.macro_auc && s->defined == fs.defined);
    guard_close(&g, "ich_metrics_summary");
    ich_metrics_free(m);
}

static void test_dicom_old_sizes(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[1024];
    tu_join(path, sizeof path, dir, "slice.dcm");
    int16_t pixels[6 * 5];
    for (int i = 0; i < 30; i++)
        pixels[i] = (int16_t)(i * 10 - 100);

    guard g;
    ich_ct_slice full = {.size = sizeof full, .rows = 6, .columns = 5, .pixels = pixels,
                         .rescale_intercept = -1024, .instance_number = 7};
    ich_ct_slice *slice = guard_open(&g, &full, OLD(ich_ct_slice));
    OK(ich_dicom_write_ct(path, slice));
    guard_close(&g, "ich_dicom_write_ct");

    ich_dicom_limits *l = guard_open(&g, NULL, OLD(ich_dicom_limits));
    OK(ich_dicom_default_limits(l));
    assert_true(l->max_file_bytes == ICH_DICOM_DEFAULT_MAX_FILE_BYTES);
    guard_close(&g, "ich_dicom_default_limits");
    l = guard_open(&g, NULL, OLD(ich_dicom_limits));
    OK(ich_dicom_get_limits(l));
    assert_true(l->max_file_bytes == ICH_DICOM_DEFAULT_MAX_FILE_BYTES);
    /* fields past the old size take their defaults when read */
    l->max_file_bytes = 1 << 20;
    OK(ich_dicom_set_limits(l));
    ich_dicom_limits now = {.size = sizeof now};
    OK(ich_dicom_get_limits(&now));
    assert_true(now.max_file_bytes == 1 << 20 && now.max_pixels == ICH_DICOM_DEFAULT_MAX_PIXELS);
    OK(ich_dicom_set_limits(NULL));
    ich_dicom *d = NULL;
    OK(ich_dicom_read_with_limits(path, l, &d));
    ich_dicom_free(d);
    size_t size = 0;
    uint8_t *bytes = tu_read_file(path, &size);
    assert_non_null(bytes);
    d = NULL;
    OK(ich_dicom_read_memory_with_limits(bytes, size, "slice", l, &d));
    guard_close(&g, "ich_dicom_limits");
    free(bytes);

    ich_dicom_info *info = guard_open(&g, NULL, OLD(ich_dicom_info));
    OK(ich_dicom_get_info(d, info));
    assert_int_equal(info->rows, 6);
    assert_int_equal(info->columns, 5);
    guard_close(&g, "ich_dicom_get_info");
    ich_dicom_free(d);
    tu_rmtree(dir);
    free(dir);
}

static void test_augment_old_sizes(void **state)
{
    (void)state;
    ich_augment *a = NULL;
    OK(ich_augment_create(&a));
    OK(ich_augment_parse(a, "hflip:1,brightness_contrast:1:0.1:0.1"));
    guard g;
    ich_augment_choices *c = guard_open(&g, NULL, OLD(ich_augment_choices));
    (ich_augment_choices_init)(c);
    assert_true(c->contrast == 1.0);
    guard_close(&g, "ich_augment_choices_init");
    c = guard_open(&g, NULL, OLD(ich_augment_choices));
    OK(ich_augment_choose(a, 3, c));
    assert_int_equal(c->hflip, 1);
    float image[2 * 3 * 4];
    for (int i = 0; i < 24; i++)
        image[i] = (float)i;
    OK(ich_augment_apply_choices_f32(c, image, 2, 3, 4));
    uint8_t u8[3 * 4 * 2];
    memset(u8, 7, sizeof u8);
    OK(ich_augment_apply_choices_u8(c, u8, 3, 4, 2));
    guard_close(&g, "ich_augment_choices");

    /* offline: two PNG images, both positive for "any" */
    char *dir = tu_mkdtemp(), out_dir[1024], png[1024];
    tu_join(out_dir, sizeof out_dir, dir, "out");
    ich_labels *t = NULL;
    OK(ich_labels_create(NULL, 0, &t));
    const float rows[2][6] = {{1, 1, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 1}};
    const char *ids[2] = {"ID_a", "ID_b"};
    uint8_t pixels[8 * 8 * 3];
    memset(pixels, 100, sizeof pixels);
    for (int r = 0; r < 2; r++) {
        OK(ich_labels_add(t, ids[r], rows[r], NULL));
        char name[64];
        snprintf(name, sizeof name, "%s.png", ids[r]);
        OK(ich_png_write(tu_join(png, sizeof png, dir, name), pixels, 8, 8, 3));
    }
    ich_augment_offline_options *o = guard_open(&g, NULL, OLD(ich_augment_offline_options));
    (ich_augment_offline_options_init)(o);
    o->target = 3;
    o->threads = 1;
    ich_labels *augmented = NULL;
    OK(ich_augment_offline(a, t, dir, out_dir, o, &augmented));
    assert_true(ich_labels_rows(augmented) > 2);
    guard_close(&g, "ich_augment_offline_options");
    ich_labels_free(augmented);
    ich_labels_free(t);
    ich_augment_free(a);
    tu_rmtree(dir);
    free(dir);
}

/* The progress callback's struct is the library's (size = its sizeof); a
 * callback built against the first version reads only that far. */
static int record_progress_size(void *user, const ich_train_progress *p)
{
    *(size_t *)user = p->size;
    return 0;
}

/* The pipeline's structs on a small phantom: its options, the label
 * steps, a dataset, a model with its optimizer, schedule and training, the
 * evaluation report. */
static void test_pipeline_old_sizes(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), images[1024], csv[1024], selected[1024], checkpoint[1024],
         report[1024];
    tu_join(images, sizeof images, dir, "images");
    tu_join(csv, sizeof csv, dir, "labels.csv");
    tu_join(selected, sizeof selected, dir, "selected");
    tu_join(checkpoint, sizeof checkpoint, dir, "model.safetensors");
    tu_join(report, sizeof report, dir, "report");
    guard g;

    ich_phantom_options *po = guard_open(&g, NULL, OLD(ich_phantom_options));
    (ich_phantom_options_init)(po);
    assert_int_equal(po->patients, 20);
    po->patients = 4;
    po->slices = 4;
    po->rows = po->columns = 32;
    po->threads = 1;
    po->prevalence = 1.0;
    int64_t written = 0;
    OK(ich_phantom_write(dir, po, &written));
    assert_int_equal(written, 16);
    float hu[32 * 32], slice_labels[6];
    char id[64];
    OK(ich_phantom_slice(po, 0, 0, 0, hu, 32 * 32, slice_labels, id, sizeof id));
    guard_close(&g, "ich_phantom_options");

    ich_labels *labels = NULL;
    OK(ich_labels_read(csv, &labels));
    ich_sample_options *so = guard_open(&g, NULL, OLD(ich_sample_options));
    (ich_sample_options_init)(so);
    so->per_label = 2;
    ich_labels *sampled = NULL;
    OK(ich_labels_sample(labels, so, &sampled));
    assert_true(ich_labels_rows(sampled) > 0);
    guard_close(&g, "ich_sample_options");
    ich_labels_free(sampled);

    ich_split_options *sp = guard_open(&g, NULL, OLD(ich_split_options));
    (ich_split_options_init)(sp);
    sp->stratify = 0;
    ich_labels *parts[3] = {NULL, NULL, NULL};
    OK(ich_labels_split(labels, sp, parts));
    assert_int_equal(ich_labels_rows(parts[0]) + ich_labels_rows(parts[1]) +
                         ich_labels_rows(parts[2]),
                     16);
    guard_close(&g, "ich_split_options");
    for (int k = 0; k < 3; k++)
        ich_labels_free(parts[k]);

    ich_select_options *se = guard_open(&g, NULL, OLD(ich_select_options));
    (ich_select_options_init)(se);
    se->threads = 1;
    int64_t copied = 0, missing = 0, failed = 0;
    OK(ich_labels_select_files(labels, images, selected, se, &copied, &missing, &failed, NULL));
    assert_int_equal(copied, 16);
    guard_close(&g, "ich_select_options");

    ich_dataset_options *dop = guard_open(&g, NULL, OLD(ich_dataset_options));
    (ich_dataset_options_init)(dop);
    assert_int_equal(dop->batch_size, 16);
    dop->batch_size = 4;
    dop->workers = 0;
    ich_window *window = NULL;
    OK(ich_window_from_string("windows=40/80,80/200,600/2800;mode=linear;size=32x32;"
                              "resize=bilinear;quantize=0;mean=none;std=none;neighbors=0",
                              &window));
    dop->window = window;
    ich_dataset *ds = NULL;
    OK(ich_dataset_open(labels, images, dop, &ds));
    assert_int_equal(ich_dataset_length(ds), 16);
    ich_dataset *ds_csv = NULL;
    OK(ich_dataset_open_csv(csv, images, dop, &ds_csv));
    ich_dataset_free(ds_csv);
    guard_close(&g, "ich_dataset_options");

    ich_model *model = NULL;
    OK(ich_model_create("input 3x32x32, conv 4 3, relu, gap, linear 6", &model));
    OK(ich_model_set_input_window(model, window));
    ich_tensor_view *v = guard_open(&g, NULL, OLD(ich_tensor_view));
    OK(ich_model_tensor(model, 0, v));
    assert_string_equal(v->name, "conv1.weight");
    guard_close(&g, "ich_model_tensor");

    /* a pretrained backbone: the model's own file, loaded with a report
     * of the first version */
    OK(ich_model_save(model, checkpoint));
    ich_pretrained_report *pr = guard_open(&g, NULL, OLD(ich_pretrained_report));
    pr->tensor_fn = NULL;
    OK(ich_model_load_pretrained(model, checkpoint, NULL, pr));
    assert_int_equal(pr->loaded, 4);
    assert_int_equal(pr->skipped + pr->fresh + pr->summed, 0);
    guard_close(&g, "ich_model_load_pretrained");

    ich_optimizer_options *oo = guard_open(&g, NULL, OLD(ich_optimizer_options));
    (ich_optimizer_options_init)(oo, ICH_OPTIM_ADAM);
    assert_true(oo->beta2 == 0.999);
    ich_optimizer *opt = NULL;
    OK(ich_optimizer_create(model, oo, &opt));
    guard_close(&g, "ich_optimizer_options");
    v = guard_open(&g, NULL, OLD(ich_tensor_view));
    OK(ich_optimizer_state(opt, 0, v));
    assert_non_null(v->name);
    guard_close(&g, "ich_optimizer_state");

    guard gs; /* lives until training, which reads it through the train options */
    ich_schedule_options *sco = guard_open(&gs, NULL, OLD(ich_schedule_options));
    (ich_schedule_options_init)(sco, ICH_SCHEDULE_STEP);
    ich_schedule *schedule = NULL;
    OK(ich_schedule_create(opt, sco, &schedule));
    OK(ich_schedule_step(schedule, 0.5));
    ich_schedule_free(schedule);

    ich_train_options *to = guard_open(&g, NULL, OLD(ich_train_options));
    (ich_train_options_init)(to);
    assert_int_equal(to->epochs, 10);
    to->epochs = 1;
    to->schedule = sco;
    size_t progress_size = 0;
    to->progress = record_progress_size;
    to->progress_user = &progress_size;
    ich_history *history = NULL;
    OK(ich_train(model, opt, ds, NULL, to, &history));
    /* the library's own struct, handed to the callback, says its size */
    assert_int_equal(progress_size, sizeof(ich_train_progress));
    guard_close(&g, "ich_train_options");
    guard_close(&gs, "ich_schedule_options");
    ich_epoch_stats *es = guard_open(&g, NULL, OLD(ich_epoch_stats));
    OK(ich_history_get(history, 0, es));
    assert_int_equal(es->epoch, 0);
    guard_close(&g, "ich_history_get");
    ich_history_free(history);
    OK(ich_model_save(model, checkpoint));

    ich_evaluate_options *eo = guard_open(&g, NULL, OLD(ich_evaluate_options));
    (ich_evaluate_options_init)(eo);
    assert_int_equal(eo->bootstrap, 1000);
    eo->bootstrap = 10;
    eo->batch_size = 4;
    OK(ich_evaluate_report(checkpoint, csv, images, report, eo));
    guard_close(&g, "ich_evaluate_options");
    /* the summary the report fills, at its first version's size */
    ich_evaluate_options full;
    ich_evaluate_options_init(&full);
    full.bootstrap = 0;
    ich_evaluate_summary *summary = guard_open(&g, NULL, OLD(ich_evaluate_summary));
    full.summary = summary;
    OK(ich_evaluate_report(checkpoint, csv, images, report, &full));
    assert_int_equal(summary->evaluated, 16);
    guard_close(&g, "ich_evaluate_summary");

    ich_optimizer_free(opt);
    ich_model_free(model);
    ich_dataset_free(ds);
    ich_window_free(window);
    ich_labels_free(labels);
    tu_rmtree(dir);
    free(dir);
}

/* Whole folders (<ich/pipeline.h>): two written slices preprocessed and
 * predicted, each call with its options and summary at their first
 * versions' sizes. */
static int count_predictions(void *user, const char *path, const char *id,
                             const float *probabilities, int32_t outputs, const char *problem)
{
    (void)path;
    (void)id;
    (void)outputs;
    (void)problem;
    *(int *)user += probabilities != NULL;
    return 0;
}

static void test_folder_old_sizes(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), scans[1024], png[1024], csv[1024], path[1024];
    tu_join(scans, sizeof scans, dir, "scans");
    tu_join(png, sizeof png, dir, "png");
    tu_join(csv, sizeof csv, dir, "predictions.csv");
    assert_int_equal(mkdir(scans, 0755), 0);
    int16_t pixels[16 * 16];
    for (int i = 0; i < 16 * 16; i++)
        pixels[i] = (int16_t)(i * 7 % 200 + 900);
    for (int k = 0; k < 2; k++) {
        char name[32];
        snprintf(name, sizeof name, "ID_%d.dcm", k);
        ich_ct_slice slice = {.size = sizeof slice, .rows = 16, .columns = 16,
                              .pixels = pixels, .rescale_slope = 1,
                              .rescale_intercept = -1024, .instance_number = k + 1};
        OK(ich_dicom_write_ct(tu_join(path, sizeof path, scans, name), &slice));
    }
    ich_window *window = NULL;
    OK(ich_window_create(&window));
    OK(ich_window_add_list(window, "brain"));
    OK(ich_window_set_size(window, 16, 16, ICH_RESIZE_BILINEAR));
    guard g, gs;

    ich_preprocess_options *po = guard_open(&g, NULL, OLD(ich_preprocess_options));
    (ich_preprocess_options_init)(po);
    assert_int_equal(po->threads, 0);
    po->threads = 1;
    ich_preprocess_summary *ps = guard_open(&gs, NULL, OLD(ich_preprocess_summary));
    OK(ich_preprocess_folder(scans, png, window, po, ps));
    assert_int_equal(ps->files, 2);
    assert_int_equal(ps->converted, 2);
    assert_int_equal(ps->failed, 0);
    assert_int_equal(ps->threads, 1);
    guard_close(&gs, "ich_preprocess_summary");
    guard_close(&g, "ich_preprocess_options");
    /* a summary below the first version: refused, nothing written */
    ps = guard_open(&gs, NULL, OLD(ich_preprocess_summary) - 4);
    assert_int_equal(ich_preprocess_folder(scans, png, window, NULL, ps),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ps->files, (int64_t)0xa5a5a5a5a5a5a5a5ull);
    guard_close(&gs, "ich_preprocess_summary (too small)");

    ich_model *model = NULL;
    OK(ich_model_create("input 1x16x16, flatten, linear 6", &model));
    OK(ich_model_init_weights(model, 3));
    OK(ich_model_set_input_window(model, window));
    ich_predict_options *o = guard_open(&g, NULL, OLD(ich_predict_options));
    (ich_predict_options_init)(o);
    assert_int_equal(o->batch_size, 16);
    assert_true(o->threshold == 0.5f);
    o->batch_size = 1;
    o->threads = 1;
    ich_predict_summary *s = guard_open(&gs, NULL, OLD(ich_predict_summary));
    const char *paths[1] = {scans};
    int predicted = 0;
    OK(ich_predict_files(model, paths, 1, o, count_predictions, &predicted, s));
    assert_int_equal(predicted, 2);
    assert_int_equal(s->files, 2);
    assert_int_equal(s->predicted, 2);
    guard_close(&gs, "ich_predict_files: summary");
    s = guard_open(&gs, NULL, OLD(ich_predict_summary));
    OK(ich_predict_folder(model, scans, csv, o, s));
    assert_int_equal(s->predicted, 2);
    assert_true(tu_exists(csv));
    guard_close(&gs, "ich_predict_folder: summary");
    guard_close(&g, "ich_predict_options");
    s = guard_open(&gs, NULL, OLD(ich_predict_summary) - 8);
    assert_int_equal(ich_predict_files(model, paths, 1, NULL, NULL, NULL, s),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(s->files, (int64_t)0xa5a5a5a5a5a5a5a5ull);
    guard_close(&gs, "ich_predict_files: summary (too small)");

    ich_model_free(model);
    ich_window_free(window);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_metrics_old_sizes),
        cmocka_unit_test(test_dicom_old_sizes),
        cmocka_unit_test(test_augment_old_sizes),
        cmocka_unit_test(test_pipeline_old_sizes),
        cmocka_unit_test(test_folder_old_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
