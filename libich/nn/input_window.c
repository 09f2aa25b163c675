/* The input recipe and the label names a model carries in its metadata
 * ("ich.recipe", the recipe's text; "ich.labels"), so prediction and
 * evaluation feed the network exactly what it learnt from and know what
 * each output means. Checkpoints of older ich-train versions carry the
 * recipe as "ich.windows", "ich.size", "ich.mean", "ich.std" instead; those
 * are still read. A model with neither has no recipe: guessing one (a
 * brain window, say) gave silently wrong predictions, so it is an error. */
#include "ich/model.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "window/window_internal.h"

/* Does `window` make the model's input? Channels: the recipe's channels per
 * slice times the 2k + 1 stacked slices; size: the recipe's, unless it
 * keeps each slice's own (then only the slices can tell). */
static ich_status check_fits(const ich_model *model, const ich_window *window)
{
    int32_t channels = 0, rows = 0, columns = 0, per_slice, out_rows, out_cols;
    ich_status st = ich_model_input_shape(model, &channels, &rows, &columns);
    if (st == ICH_OK)
        st = ich_window_output_shape(window, rows, columns, &per_slice, &out_rows, &out_cols);
    if (st != ICH_OK)
        return st;
    int32_t neighbors = ich_window_get_neighbors(window);
    int32_t stacked = per_slice * (2 * neighbors + 1);
    if (stacked != channels)
        return ich_fail(ICH_ERR_SHAPE,
                        "the recipe gives %d channels (%d per slice x %d slices), but the model "
                        "takes %d input channels",
                        stacked, per_slice, 2 * neighbors + 1, channels);
    if (out_rows != rows || out_cols != columns)
        return ich_fail(ICH_ERR_SHAPE, "the recipe's size is %dx%d, but the model takes %dx%d images",
                        out_rows, out_cols, rows, columns);
    return ICH_OK;
}

ich_status ich_model_set_input_window(ich_model *model, const ich_window *window)
{
    if (!model || !window)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_set_input_window: NULL argument");
    char text[ICH_WINDOW_STRING_MAX];
    ich_status st = check_fits(model, window);
    if (st == ICH_OK)
        st = ich_window_to_string(window, text, sizeof text, NULL);
    if (st == ICH_OK)
        st = ich_model_set_metadata(model, "ich.recipe", text);
    /* The older keys would now contradict the recipe or duplicate it. */
    static const char *const older[] = {"ich.windows", "ich.size", "ich.mean", "ich.std"};
    for (size_t i = 0; st == ICH_OK && i < sizeof older / sizeof older[0]; i++)
        st = ich_model_set_metadata(model, older[i], NULL);
    return st;
}

ich_status ich_model_set_labels(ich_model *model, const char *const *names, int32_t count)
{
    if (!model || !names)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_set_labels: NULL argument");
    if (count != ich_model_outputs(model))
        return ich_fail(ICH_ERR_SHAPE, "ich_model_set_labels: %d names for a model with %d outputs",
                        count, ich_model_outputs(model));
    size_t length = 1;
    for (int32_t i = 0; i < count; i++) {
        const char *name = names[i];
        if (!name || !*name || strpbrk(name, ",\"\n\r\t"))
            return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                            "ich_model_set_labels: label %d is %s", i,
                            !name ? "NULL" : !*name ? "empty"
                                                    : "not a plain name (a comma, quote or control character)");
        length += strlen(name) + 1;
    }
    char *text = malloc(length);
    if (!text)
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_model_set_labels: out of memory");
    text[0] = '\0';
    for (int32_t i = 0; i < count; i++) {
        if (i)
            strcat(text, ",");
        strcat(text, names[i]);
    }
    ich_status st = ich_model_set_metadata(model, "ich.labels", text);
    free(text);
    return st;
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
    int nm = ich_window_parse_floats(mean_text, mean);
    int ns = ich_window_parse_floats(std_text, std);
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

/* Older ich-train checkpoints: windows, size and normalisation from their
 * own keys, then the check that they give the model's input shape. */
static ich_status build_older(const ich_model *model, ich_window *window)
{
    int32_t channels = 0, rows = 0, columns = 0;
    ich_status st = ich_model_input_shape(model, &channels, &rows, &columns);
    if (st)
        return st;
    const char *windows = ich_model_metadata(model, "ich.windows");
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

/* "ich.recipe": parsed, then checked against the model. */
static ich_status build_recipe(const ich_model *model, const char *text, ich_window **out)
{
    ich_status st = ich_window_from_string(text, out);
    if (st == ICH_OK && (st = check_fits(model, *out)) != ICH_OK) {
        ich_window_free(*out);
        *out = NULL;
    }
    return st;
}

ich_status ich_model_input_window(const ich_model *model, ich_window **out)
{
    if (out)
        *out = NULL;
    if (!model || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_model_input_window: NULL argument");
    const char *recipe = ich_model_metadata(model, "ich.recipe");
    if (recipe)
        return build_recipe(model, recipe, out);
    if (!ich_model_metadata(model, "ich.windows"))
        return ich_fail(ICH_ERR_NOT_FOUND,
                        "the model carries no input recipe (metadata \"ich.recipe\"): it was "
                        "saved without one, so how to preprocess its input is unknown; give the "
                        "recipe it was trained with (ich_window_from_string(), or --recipe on "
                        "the command line)");
    ich_window *window;
    ich_status st = ich_window_create(&window);
    if (st)
        return st;
    st = build_older(model, window);
    if (st) {
        ich_window_free(window);
        return st;
    }
    *out = window;
    return ICH_OK;
}
