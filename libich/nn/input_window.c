/* ich_model_input_window(): the windowing recipe a model was trained with,
 * rebuilt from its checkpoint metadata ("ich.windows", "ich.size",
 * "ich.mean", "ich.std", as ich-train stores them), so prediction and
 * evaluation feed the network exactly what it learnt from. */
#include "ich/model.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "core/error.h"

/* Parse "v1,v2,..." into at most ICH_WINDOW_MAX_CHANNELS floats; -1 when
 * malformed or too many. */
static int parse_floats(const char *text, float *out)
{
    int count = 0;
    while (*text) {
        if (count == ICH_WINDOW_MAX_CHANNELS)
            return -1;
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || errno || !isfinite(v) || (*end && *end != ','))
            return -1;
        out[count++] = (float)v;
        text = *end ? end + 1 : end;
    }
    return count;
}

static ich_status parse_size(const char *text, int32_t *size)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < 1 || v > 16384)
        return ich_fail(ICH_ERR_FORMAT, "model metadata \"ich.size\" = \"%s\": not a size", text);
    *size = (int32_t)v;
    return ICH_OK;
}

static ich_status set_normalization(const ich_model *model, ich_window *window)
{
    const char *mean_text = ich_model_metadata(model, "ich.mean");
    const char *std_text = ich_model_metadata(model, "ich.std");
    if (!mean_text || !std_text)
        return ICH_OK;
    float mean[ICH_WINDOW_MAX_CHANNELS], std[ICH_WINDOW_MAX_CHANNELS];
    int nm = parse_floats(mean_text, mean), ns = parse_floats(std_text, std);
    if (nm < 1 || nm != ns)
        return ich_fail(ICH_ERR_FORMAT,
                        "model metadata \"ich.mean\" = \"%s\", \"ich.std\" = \"%s\": expected "
                        "the same number of values",
                        mean_text, std_text);
    if (nm != 1 && nm != ich_window_count(window))
        return ich_fail(ICH_ERR_SHAPE,
                        "model metadata \"ich.mean\" has %d values for %d windows", nm,
                        ich_window_count(window));
    return ich_window_set_normalization(window, mean, std, nm);
}

/* Windows, size and normalisation from the metadata, then the check that
 * they give the model's input shape. */
static ich_status build(const ich_model *model, ich_window *window)
{
    int32_t channels = 0, rows = 0, columns = 0;
    ich_status st = ich_model_input_shape(model, &channels, &rows, &columns);
    if (st)
        return st;
    const char *windows = ich_model_metadata(model, "ich.windows");
    if (!windows)
        windows = channels == 1 ? "brain" : "blood,brain,bone";
    st = ich_window_add_list(window, windows);
    if (st)
        return st;
    if (ich_window_count(window) != channels)
        return ich_fail(ICH_ERR_SHAPE,
                        "model metadata \"ich.windows\" = \"%s\" gives %d channels, but the "
                        "model takes %d input channels",
                        windows, ich_window_count(window), channels);
    const char *size_text = ich_model_metadata(model, "ich.size");
    int32_t size = rows;
    if (size_text && (st = parse_size(size_text, &size)))
        return st;
    if (size != rows || size != columns)
        return ich_fail(ICH_ERR_SHAPE,
                        "model metadata \"ich.size\" = %d, but the model takes %dx%d images",
                        size, rows, columns);
    st = ich_window_set_size(window, size, size, ICH_RESIZE_BILINEAR);
    return st ? st : set_normalization(model, window);
}

ich_status ich_model_input_window(const ich_model *model, ich_window **out)
{
    if (out)
        *out = NULL;
    if (!model || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_input_window: NULL argument");
    ich_window *window;
    ich_status st = ich_window_create(&window);
    if (st)
        return st;
    st = build(model, window);
    if (st) {
        ich_window_free(window);
        return st;
    }
    *out = window;
    return ICH_OK;
}
