/* Balanced sampling: N images per label, seeded (the pipeline's second step:
 * RSNA has ~750,000 images but few of some types, so training draws the
 * same number of each). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "core/rng.h"
#include "ich/labels.h"

void (ich_sample_options_init)(ich_sample_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_sample_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->per_label = 10000;
    options->seed = 0;
    options->negatives = 1;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_sample_options, negatives));
}

/* Mark up to `want` of the `n` candidate rows as chosen: a partial
 * Fisher-Yates shuffle with the stream (seed, stream), so each draw depends
 * only on the seed and the candidates, not on the other labels. */
static void draw(int64_t *candidates, int64_t n, int64_t want, uint64_t seed, uint64_t stream,
                 unsigned char *chosen)
{
    ich_rng rng = ich_rng_init(seed, stream, 0);
    int64_t take = want < n ? want : n;
    for (int64_t i = 0; i < take; i++) {
        int64_t j = i + (int64_t)ich_rng_below(&rng, (uint64_t)(n - i));
        int64_t t = candidates[i];
        candidates[i] = candidates[j];
        candidates[j] = t;
        chosen[candidates[i]] = 1;
    }
}

static int has_positive(const float *v, int32_t columns)
{
    for (int32_t c = 0; c < columns; c++)
        if (v[c] >= 0.5f)
            return 1;
    return 0;
}

ich_status ich_labels_sample(const ich_labels *labels, const ich_sample_options *options,
                             ich_labels **out)
{
    if (out)
        *out = NULL;
    if (!labels || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_sample: NULL argument");
    ich_sample_options opt;
    ich_sample_options_init(&opt);
    ich_status st = ich_options_merge(&opt, sizeof opt, options,
                                      ICH_OPTIONS_V1_SIZE(ich_sample_options, negatives),
                                      "ich_labels_sample");
    if (st != ICH_OK)
        return st;
    if (opt.per_label < 1)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_sample: per_label is %lld, not >= 1",
                        (long long)opt.per_label);
    int64_t rows = ich_labels_rows(labels);
    int32_t columns = ich_labels_columns(labels);
    int64_t *candidates = malloc((size_t)(rows ? rows : 1) * sizeof *candidates);
    unsigned char *chosen = calloc((size_t)(rows ? rows : 1), 1);
    if (!candidates || !chosen) {
        free(candidates);
        free(chosen);
        return ich_fail(ICH_ERR_NO_MEMORY, "ich_labels_sample: out of memory");
    }
    /* streams 0 .. columns-1: the labels; stream `columns`: the negatives */
    for (int32_t c = 0; c <= columns; c++) {
        if (c == columns && !opt.negatives)
            break;
        int64_t n = 0;
        for (int64_t r = 0; r < rows; r++) {
            const float *v = ich_labels_values(labels, r);
            if (c < columns ? v[c] >= 0.5f : !has_positive(v, columns))
                candidates[n++] = r;
        }
        if (n < opt.per_label)
            ich_log(ICH_LOG_WARNING, "sample: %s has %lld images, fewer than %lld: taking all",
                    c < columns ? ich_labels_column_name(labels, c) : "no label (negatives)",
                    (long long)n, (long long)opt.per_label);
        draw(candidates, n, opt.per_label, opt.seed, (uint64_t)c, chosen);
    }
    free(candidates);

    const char *names[ICH_LABELS_MAX_COLUMNS];
    for (int32_t c = 0; c < columns; c++)
        names[c] = ich_labels_column_name(labels, c);
    ich_labels *result = NULL;
    st = ich_labels_create(names, columns, &result);
    for (int64_t r = 0; r < rows && st == ICH_OK; r++)
        if (chosen[r])
            st = ich_labels_add(result, ich_labels_id(labels, r), ich_labels_values(labels, r),
                                ich_labels_group(labels, r));
    free(chosen);
    if (st != ICH_OK) {
        ich_labels_free(result);
        return st;
    }
    *out = result;
    return ICH_OK;
}
