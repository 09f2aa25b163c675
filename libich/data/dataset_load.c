/* Loading one dataset sample: DICOM through the window recipe, or an 8-bit
 * PNG scaled to [0, 1], resized and normalised; neighbouring slices
 * stacked as channels; then the online augmentation. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset_internal.h"
#include "ich/dicom.h"
#include "ich/image.h"
#include "window/resize.h"

/* ---- DICOM ------------------------------------------------------------- */

static ich_status load_dicom(const ich_dataset *ds, const char *path, float *out)
{
    ich_dicom *dicom;
    ich_status st = ich_dicom_read(path, &dicom);
    if (st != ICH_OK)
        return st;
    int32_t rows, cols, shape[3];
    ich_dicom_size(dicom, &rows, &cols);
    st = ich_window_output_shape(ds->window, rows, cols, &shape[0], &shape[1], &shape[2]);
    if (st == ICH_OK && (shape[0] != ds->slice_channels || shape[1] != ds->rows ||
                         shape[2] != ds->columns))
        st = ich_fail(ICH_ERR_SHAPE, "%s: gives %d x %d x %d, the dataset's samples are %d x %d x %d",
                      path, shape[0], shape[1], shape[2], ds->slice_channels, ds->rows,
                      ds->columns);
    if (st == ICH_OK)
        st = ich_window_apply_dicom_f32(ds->window, dicom, out, /* MONOCHROME1 too */
                                        (size_t)ds->slice_channels * ds->rows * ds->columns);
    ich_dicom_free(dicom);
    return st;
}

/* ---- PNG --------------------------------------------------------------- */

/* One channel of a PNG on its way to a float plane. */
typedef struct png_job {
    const uint8_t *pixels;
    int32_t width, channels, channel;
    float mean, std;
    float *plane;
    int32_t out_cols;
} png_job;

static void png_fill_row(void *ctx, int32_t row, float *dst)
{
    const png_job *j = ctx;
    const uint8_t *src = j->pixels + (size_t)row * j->width * j->channels + j->channel;
    for (int32_t x = 0; x < j->width; x++)
        dst[x] = (float)src[(size_t)x * j->channels] / 255.0f;
}

static void png_take_row(void *ctx, int32_t row, const float *values)
{
    const png_job *j = ctx;
    float *dst = j->plane + (size_t)row * j->out_cols;
    for (int32_t x = 0; x < j->out_cols; x++)
        dst[x] = (values[x] - j->mean) / j->std;
}

/* Channels that carry the image: an alpha channel is left out. */
static int32_t colour_channels(int32_t channels) { return channels == 2 || channels == 4 ? channels - 1 : channels; }

static ich_status png_to_planes(const ich_dataset *ds, const char *path, const uint8_t *pixels,
                                int32_t width, int32_t height, int32_t channels, float *out)
{
    const ich_window_settings *s = &ds->settings;
    if (colour_channels(channels) != ds->slice_channels)
        return ich_fail(ICH_ERR_SHAPE, "%s: %d channels, the dataset's slices have %d", path,
                        colour_channels(channels), ds->slice_channels);
    if (s->norm_count > 1 && s->norm_count != ds->slice_channels)
        return ich_fail(ICH_ERR_SHAPE, "%s: normalisation has %d values for %d channels", path,
                        s->norm_count, ds->slice_channels);
    if (!s->out_rows && (height != ds->rows || width != ds->columns))
        return ich_fail(ICH_ERR_SHAPE, "%s: %d x %d pixels, the dataset's samples are %d x %d",
                        path, height, width, ds->rows, ds->columns);
    float *row = NULL;
    ich_status st = ICH_OK;
    for (int32_t c = 0; c < ds->slice_channels && st == ICH_OK; c++) {
        png_job j = {pixels, width, channels, c, 0.0f, 1.0f,
                     out + (size_t)c * ds->rows * ds->columns, ds->columns};
        if (s->norm_count) {
            j.mean = s->mean[s->norm_count == 1 ? 0 : c];
            j.std = s->std[s->norm_count == 1 ? 0 : c];
        }
        if (height != ds->rows || width != ds->columns) {
            st = ich_resize_rows(height, width, ds->rows, ds->columns, ICH_RESIZE_BILINEAR,
                                 png_fill_row, png_take_row, &j);
            continue;
        }
        if (!row && !(row = malloc((size_t)width * sizeof *row)))
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
        for (int32_t r = 0; r < height; r++) {
            png_fill_row(&j, r, row);
            png_take_row(&j, r, row);
        }
    }
    free(row);
    return st;
}

static ich_status load_png(const ich_dataset *ds, const char *path, float *out)
{
    uint8_t *pixels;
    int32_t width, height, channels;
    ich_status st = ich_png_read(path, &pixels, &width, &height, &channels);
    if (st != ICH_OK)
        return st;
    st = png_to_planes(ds, path, pixels, width, height, channels, out);
    ich_free(pixels);
    return st;
}

/* ---- Samples ----------------------------------------------------------- */

static ich_status load_slice(const ich_dataset *ds, int64_t index, float *out)
{
    return ds->is_png[index] ? load_png(ds, ds->paths[index], out)
                             : load_dicom(ds, ds->paths[index], out);
}

ich_status ich_dataset_load_sample(const ich_dataset *ds, int64_t index, int augment,
                                   int64_t epoch, float *image)
{
    const size_t slice_floats = (size_t)ds->slice_channels * ds->rows * ds->columns;
    for (int32_t k = 0; k < ds->span; k++) {
        int64_t source = ds->neighbors ? ds->neighbors[index * ds->span + k] : index;
        ich_status st = load_slice(ds, source, image + (size_t)k * slice_floats);
        if (st != ICH_OK)
            return st;
    }
    if (!augment || !ds->augment)
        return ICH_OK;
    /* Depends on (seed, epoch, sample) only: the same for any worker. */
    ich_rng rng = ich_rng_init(ds->seed, (uint64_t)epoch, (uint64_t)index);
    return ich_augment_apply_f32(ds->augment, ich_rng_next(&rng), image, ds->channels, ds->rows,
                                 ds->columns);
}

ich_status ich_dataset_probe(const ich_dataset *ds, int64_t index, int32_t *channels,
                             int32_t *rows, int32_t *columns)
{
    const char *path = ds->paths[index];
    if (ds->is_png[index]) {
        uint8_t *pixels;
        ich_status st = ich_png_read(path, &pixels, columns, rows, channels);
        if (st == ICH_OK) {
            *channels = colour_channels(*channels);
            ich_free(pixels);
        }
        return st;
    }
    ich_dicom *dicom;
    ich_status st = ich_dicom_read(path, &dicom);
    if (st != ICH_OK)
        return st;
    int32_t in_rows, in_cols;
    ich_dicom_size(dicom, &in_rows, &in_cols);
    ich_dicom_free(dicom);
    return ich_window_output_shape(ds->window, in_rows, in_cols, channels, rows, columns);
}
