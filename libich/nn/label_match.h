/* Internal: matching a label table's columns to a model's labels by name,
 * the one place every consumer of a model plus a label table goes through
 * (the report, the dataset's `model` option, ich_train(), the Python
 * helpers through the public calls in labels.h). It reads the model (its
 * outputs and "ich.labels"), so it lives with the model in nn/; the
 * dataset's `model` option reaches it through the public
 * ich_labels_match_model(). */
#ifndef ICH_INTERNAL_LABEL_MATCH_H
#define ICH_INTERNAL_LABEL_MATCH_H

#include "ich/labels.h"
#include "ich/model.h"

/* map[c] = the column of `labels` that feeds the model's output c, for
 * c < ich_model_outputs(model) (at most ICH_LABELS_MAX_COLUMNS). The
 * model's names are its "ich.labels", else the six RSNA labels for a
 * 6-output model; the table must hold exactly those names, in any order
 * (ignoring case). A model with another output count and no names takes
 * the columns in table order when the counts agree (with a warning).
 * ICH_ERR_SHAPE naming `labels_source`, both column lists and what is
 * missing or unknown; ICH_ERR_FORMAT for a bad "ich.labels". */
ich_status ich_labels_map_to_model(const ich_labels *labels, const ich_model *model,
                                   const char *labels_source, const char *model_source,
                                   int32_t *map);

/* The same map only when the model carries "ich.labels" (or `assume_rsna`
 * is set and it has 6 outputs); otherwise *named = 0 and the identity
 * map after a count check. For ich_train(), where a new model takes the
 * dataset's labels as they come. */
ich_status ich_labels_map_if_named(const ich_labels *labels, const ich_model *model,
                                   const char *labels_source, int assume_rsna, int32_t *map,
                                   int *named);

#endif
