/* Label columns matched to a model's labels by name (labels.h, "Matching
 * a model's labels"; nn/label_match.h). Matching by position gave
 * silent wrong results: a CSV in the tutorial's column order scored a
 * perfect model's AUCs as 0.19 to 0.66 (issue 11). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "nn/label_match.h"

/* A model's label names, parsed. */
typedef struct model_names {
    int32_t count;
    int named;                                /* from "ich.labels" */
    const char *names[ICH_LABELS_MAX_COLUMNS]; /* NULL when unknown */
    char text[4096];
} model_names;

static const char *trimmed(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* Split "ich.labels" into names; ICH_ERR_FORMAT unless one non-empty,
 * distinct name per output. */
static ich_status parse_names(model_names *m, const char *text, int32_t outputs,
                              const char *source)
{
    if (strlen(text) >= sizeof m->text)
        return ich_fail(ICH_ERR_FORMAT, "%s: \"ich.labels\" is too long", source);
    strcpy(m->text, text);
    m->count = 0;
    char *save = NULL;
    for (char *p = strtok_r(m->text, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (m->count == ICH_LABELS_MAX_COLUMNS)
            return ich_fail(ICH_ERR_FORMAT, "%s: \"ich.labels\" names more than %d labels",
                            source, ICH_LABELS_MAX_COLUMNS);
        m->names[m->count++] = trimmed(p);
    }
    int ok = m->count == outputs;
    for (int32_t i = 0; ok && i < m->count; i++) {
        ok = *m->names[i] != '\0';
        for (int32_t j = 0; ok && j < i; j++)
            ok = strcasecmp(m->names[i], m->names[j]) != 0;
    }
    if (!ok)
        return ich_fail(ICH_ERR_FORMAT,
                        "%s: \"ich.labels\" is \"%s\": it must name each of the model's %d "
                        "outputs once, comma-separated", source, text, outputs);
    m->named = 1;
    return ICH_OK;
}

/* The model's names: "ich.labels", else the RSNA order for 6 outputs when
 * `assume_rsna`, else unknown (names NULL, count = outputs). */
static ich_status get_names(const ich_model *model, const char *source, int assume_rsna,
                            model_names *m)
{
    memset(m, 0, sizeof *m);
    int32_t outputs = ich_model_outputs(model);
    if (outputs < 1 || outputs > ICH_LABELS_MAX_COLUMNS)
        return ich_fail(ICH_ERR_SHAPE, "%s: the model has %d outputs (1 to %d can be labels)",
                        source, outputs, ICH_LABELS_MAX_COLUMNS);
    const char *text = ich_model_metadata(model, "ich.labels");
    if (text)
        return parse_names(m, text, outputs, source);
    m->count = outputs;
    if (assume_rsna && outputs == ICH_LABEL_COUNT)
        for (int32_t i = 0; i < outputs; i++)
            m->names[i] = ich_label_name(i);
    return ICH_OK;
}

/* "a, b, c" into buf. */
static void list_columns(const ich_labels *labels, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int32_t c = 0; c < ich_labels_columns(labels); c++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", c ? ", " : "",
                 ich_labels_column_name(labels, c));
}

static void list_names(const model_names *m, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int32_t c = 0; c < m->count; c++)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", c ? ", " : "", m->names[c]);
}

static int model_has(const model_names *m, const char *name)
{
    for (int32_t i = 0; i < m->count; i++)
        if (strcasecmp(m->names[i], name) == 0)
            return 1;
    return 0;
}

/* The refusal: both lists and, by name, what is missing and what is extra. */
static ich_status mismatch(const ich_labels *labels, const model_names *m,
                           const char *labels_source, const char *model_source)
{
    char have[2048], want[2048], missing[1024] = "", unknown[1024] = "";
    list_columns(labels, have, sizeof have);
    list_names(m, want, sizeof want);
    for (int32_t i = 0; i < m->count; i++)
        if (ich_labels_find_column(labels, m->names[i]) < 0)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     *missing ? ", " : "", m->names[i]);
    for (int32_t c = 0; c < ich_labels_columns(labels); c++)
        if (!model_has(m, ich_labels_column_name(labels, c)))
            snprintf(unknown + strlen(unknown), sizeof unknown - strlen(unknown), "%s%s",
                     *unknown ? ", " : "", ich_labels_column_name(labels, c));
    return ich_fail(ICH_ERR_SHAPE,
                    "%s: the label columns (%s) do not match the labels of %s (%s%s)%s%s"
                    "%s%s",
                    labels_source, have, model_source, want,
                    m->named ? "" : ", assumed: the model has no \"ich.labels\"",
                    *missing ? "; missing: " : "", missing,
                    *unknown ? "; not a label of the model: " : "", unknown);
}

/* map[c] = the table's column named like model label c. */
static ich_status map_by_name(const ich_labels *labels, const model_names *m,
                              const char *labels_source, const char *model_source,
                              int32_t *map)
{
    if (ich_labels_columns(labels) != m->count)
        return mismatch(labels, m, labels_source, model_source);
    for (int32_t c = 0; c < m->count; c++)
        if ((map[c] = ich_labels_find_column(labels, m->names[c])) < 0)
            return mismatch(labels, m, labels_source, model_source);
    return ICH_OK;
}

/* Unnamed models with other than 6 outputs: by position when the counts
 * agree, as nothing better is known. */
static ich_status map_by_position(const ich_labels *labels, const model_names *m,
                                  const char *labels_source, const char *model_source,
                                  int32_t *map)
{
    char have[2048];
    list_columns(labels, have, sizeof have);
    if (ich_labels_columns(labels) != m->count)
        return ich_fail(ICH_ERR_SHAPE,
                        "%s: %d label columns (%s), but %s has %d outputs and no label "
                        "names (\"ich.labels\") to match them by",
                        labels_source, ich_labels_columns(labels), have, model_source, m->count);
    for (int32_t c = 0; c < m->count; c++)
        map[c] = c;
    ich_log(ICH_LOG_WARNING,
            "%s: %s has no label names (\"ich.labels\"): its %d outputs are taken "
            "to be the columns %s in this order", labels_source, model_source, m->count, have);
    return ICH_OK;
}

/* `s`, or `fallback` when NULL or empty. */
static const char *or_default(const char *s, const char *fallback)
{
    return s && *s ? s : fallback;
}

/* ich_labels_map_to_model(), keeping the names it used in *m. */
static ich_status map_model(const ich_labels *labels, const ich_model *model,
                            const char *labels_source, const char *model_source, int32_t *map,
                            model_names *m)
{
    labels_source = or_default(labels_source, "the label table");
    char who[1024] = "the model";
    if (model_source && *model_source)
        snprintf(who, sizeof who, "the model %s", model_source);
    ich_status st = get_names(model, who, 1, m);
    if (st)
        return st;
    return m->names[0] ? map_by_name(labels, m, labels_source, who, map)
                       : map_by_position(labels, m, labels_source, who, map);
}

ich_status ich_labels_map_to_model(const ich_labels *labels, const ich_model *model,
                                   const char *labels_source, const char *model_source,
                                   int32_t *map)
{
    model_names m;
    return map_model(labels, model, labels_source, model_source, map, &m);
}

ich_status ich_labels_map_if_named(const ich_labels *labels, const ich_model *model,
                                   const char *labels_source, int assume_rsna, int32_t *map,
                                   int *named)
{
    model_names m;
    ich_status st = get_names(model, "the model", assume_rsna, &m);
    *named = st == ICH_OK && m.names[0] != NULL;
    if (st || *named)
        return st ? st : map_by_name(labels, &m, labels_source, "the model", map);
    if (ich_labels_columns(labels) != m.count)
        return ich_fail(ICH_ERR_SHAPE, "%s has %d label columns but the model has %d outputs",
                        labels_source, ich_labels_columns(labels), m.count);
    for (int32_t c = 0; c < m.count; c++)
        map[c] = c;
    return ICH_OK;
}

/* ---- Public calls (labels.h) ---------------------------------------------- */

ich_status ich_labels_of_model(const ich_model *model, ich_labels **out)
{
    if (!model || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_of_model: NULL argument");
    *out = NULL;
    model_names m;
    ich_status st = get_names(model, "ich_labels_of_model", 1, &m);
    if (st)
        return st;
    if (!m.names[0])
        return ich_fail(ICH_ERR_NOT_FOUND,
                        "ich_labels_of_model: the model has %d outputs and no label names "
                        "(\"ich.labels\")", m.count);
    return ich_labels_create(m.names, m.count, out);
}

/* A new table: the rows of `labels` with columns map[0 .. count). */
static ich_status reordered(const ich_labels *labels, const int32_t *map, int32_t count,
                            const char *const *names, ich_labels **out)
{
    ich_status st = ich_labels_create(names, count, out);
    float values[ICH_LABELS_MAX_COLUMNS];
    for (int64_t r = 0; !st && r < ich_labels_rows(labels); r++) {
        const float *v = ich_labels_values(labels, r);
        for (int32_t c = 0; c < count; c++)
            values[c] = v[map[c]];
        st = ich_labels_add(*out, ich_labels_id(labels, r), values, ich_labels_group(labels, r));
    }
    if (st) {
        ich_labels_free(*out);
        *out = NULL;
    }
    return st;
}

ich_status ich_labels_match_model(const ich_labels *labels, const ich_model *model,
                                  const char *labels_source, const char *model_source,
                                  ich_labels **out)
{
    if (!labels || !model || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_match_model: NULL argument");
    *out = NULL;
    int32_t map[ICH_LABELS_MAX_COLUMNS];
    model_names m;
    ich_status st = map_model(labels, model, labels_source, model_source, map, &m);
    if (st)
        return st;
    /* the model's own spelling of the names, so tables and reports agree
     * with its outputs; the table's names when it has none */
    const char *cols[ICH_LABELS_MAX_COLUMNS];
    for (int32_t c = 0; c < m.count; c++)
        cols[c] = m.names[c] ? m.names[c] : ich_labels_column_name(labels, map[c]);
    return reordered(labels, map, m.count, cols, out);
}
