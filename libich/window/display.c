/* The display side of a slice (window.h, "Slices and their photometric
 * interpretation"): a MONOCHROME1 slice shows its smallest values white,
 * so its windowed values are inverted in the display range, v -> 1 - v,
 * after the modality rescale and the window, before the uint8 step or the
 * normalisation. The HU themselves stay the modality rescale of the stored
 * values, as the DICOM standard and pydicom's apply_modality_lut define
 * them (issue 11: mirroring the stored values gave -3883..-1030 HU where
 * pydicom gives -1019..1834).
 *
 * The inversion runs on the recipe's output without normalisation: the
 * mapping to [0, 1] is per pixel and the resize a weighted mean whose
 * weights sum to 1, so inverting after the resize equals inverting before
 * it (to float rounding), and the windowing code stays as it is. */
#include <stdlib.h>

#include "core/error.h"
#include "ich/dicom.h"
#include "ich/window.h"
#include "window/window_internal.h"

/* The display values v in [0, 1] of `window` on `hu` (CHW, no
 * normalisation) into out[count], inverted (1 - v). */
static ich_status inverted_values(const ich_window *window, const float *hu, int32_t rows,
                                  int32_t columns, float *out, size_t count)
{
    ich_window *plain = NULL;
    ich_status st = ich_window_copy(window, &plain);
    if (st == ICH_OK)
        st = ich_window_set_normalization(plain, NULL, NULL, 0);
    if (st == ICH_OK)
        st = ich_window_apply_f32(plain, hu, rows, columns, out, count);
    ich_window_free(plain);
    for (size_t i = 0; st == ICH_OK && i < count; i++)
        out[i] = 1.0f - out[i];
    return st;
}

ich_status ich_window_apply_display_f32(const ich_window *window, const float *hu,
                                        int32_t rows, int32_t columns, int monochrome1,
                                        float *out, size_t out_count)
{
    if (!monochrome1)
        return ich_window_apply_f32(window, hu, rows, columns, out, out_count);
    ich_window_settings s;
    ich_status st = ich_window_read_settings(window, &s);
    if (st == ICH_OK)
        st = inverted_values(window, hu, rows, columns, out, out_count);
    int32_t channels = 0;
    if (st == ICH_OK)
        st = ich_window_output_shape(window, rows, columns, &channels, NULL, NULL);
    if (st != ICH_OK || s.norm_count == 0)
        return st;
    size_t plane = out_count / (size_t)channels;
    for (int32_t c = 0; c < channels; c++) {
        /* the same float32 operation as the recipe's own normalisation */
        float mean = s.mean[s.norm_count == 1 ? 0 : c], std = s.std[s.norm_count == 1 ? 0 : c];
        for (size_t i = (size_t)c * plane; i < (size_t)(c + 1) * plane; i++)
            out[i] = (out[i] - mean) / std;
    }
    return ICH_OK;
}

ich_status ich_window_apply_display_u8(const ich_window *window, const float *hu, int32_t rows,
                                       int32_t columns, int monochrome1, uint8_t *out,
                                       size_t out_count)
{
    if (!monochrome1)
        return ich_window_apply_u8(window, hu, rows, columns, out, out_count);
    int32_t shape[3] = {0, 0, 0};
    ich_status st = ich_window_output_shape(window, rows, columns, &shape[0], &shape[1],
                                            &shape[2]);
    if (st == ICH_OK && !out)
        st = ich_fail(ICH_ERR_INVALID_ARGUMENT, "window apply: NULL out");
    float *values = st == ICH_OK ? malloc((out_count ? out_count : 1) * sizeof *values) : NULL;
    if (st == ICH_OK && !values)
        st = ich_fail(ICH_ERR_NO_MEMORY, "window apply: out of memory");
    if (st == ICH_OK)
        st = inverted_values(window, hu, rows, columns, values, out_count);
    ich_window_settings s = {0};
    if (st == ICH_OK)
        st = ich_window_read_settings(window, &s);
    /* A quantizing recipe's values are whole grey levels / 255 already:
     * round, so that 1 - k/255 gives 255 - k, not 254 by a rounding error;
     * otherwise truncate, as the u8 step does. */
    float half = s.quantize ? 0.5f : 0.0f;
    size_t plane = (size_t)shape[1] * shape[2];
    for (size_t i = 0; st == ICH_OK && i < plane; i++)
        for (int32_t c = 0; c < shape[0]; c++) /* CHW -> HWC */
            out[i * shape[0] + c] = (uint8_t)(values[(size_t)c * plane + i] * 255.0f + half);
    free(values);
    return st;
}

/* The slice's HU and photometric interpretation. */
static ich_status slice_of(const ich_dicom *dicom, const float **hu, int32_t *rows,
                           int32_t *columns, int *monochrome1)
{
    ich_dicom_info info = {.size = sizeof info};
    ich_status st = dicom ? ich_dicom_get_info(dicom, &info)
                          : ich_fail(ICH_ERR_INVALID_ARGUMENT, "window apply: NULL slice");
    *hu = dicom ? ich_dicom_hu(dicom) : NULL;
    *rows = info.rows;
    *columns = info.columns;
    *monochrome1 = info.monochrome1 != 0;
    return st;
}

ich_status ich_window_apply_dicom_f32(const ich_window *window, const ich_dicom *dicom,
                                      float *out, size_t out_count)
{
    const float *hu;
    int32_t rows, columns;
    int monochrome1;
    ich_status st = slice_of(dicom, &hu, &rows, &columns, &monochrome1);
    return st ? st : ich_window_apply_display_f32(window, hu, rows, columns, monochrome1, out,
                                                  out_count);
}

ich_status ich_window_apply_dicom_u8(const ich_window *window, const ich_dicom *dicom,
                                     uint8_t *out, size_t out_count)
{
    const float *hu;
    int32_t rows, columns;
    int monochrome1;
    ich_status st = slice_of(dicom, &hu, &rows, &columns, &monochrome1);
    return st ? st : ich_window_apply_display_u8(window, hu, rows, columns, monochrome1, out,
                                                 out_count);
}
