/* Train/validation/test split by whole groups (patients), stratified.
 *
 * The method (also described in include/ich/labels.h):
 *  1. Groups: the rows' group strings, numbered by first appearance; a row
 *     without a group is a group of its own.
 *  2. Order: the groups are shuffled with the seed, then stably sorted by
 *     the rarity of their rarest positive label (the total positives of
 *     that label in the table, fewest first; groups without positives
 *     last), then by size class (floor(log2(rows)), largest first). Rare
 *     labels are placed first, while every part can still take them, big
 *     groups before the small ones that even out the counts, and the seed
 *     decides among groups that compare equal.
 *  3. Greedy: each group joins the part that keeps what has been placed so
 *     far closest to the ratios: the least sum over the dimensions d (the
 *     rows, and with stratify each label's positives) and the parts p of
 *     ((have[p][d] - ratio[p] * placed[d]) / total[d])^2. Measuring against
 *     what is placed so far, not the final totals, keeps the order from
 *     biasing the result (the rows without positives all come last).
 *  4. Local search on the final error (placed = total): move one group to
 *     another part, or swap two groups of different parts, whenever that
 *     lowers it, until a pass changes nothing.
 * Everything depends only on the table, the options and the seed. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "core/rng.h"
#include "ich/labels.h"

#define PARTS 3

/* Stream id of the split's shuffle, so it differs from other users of the
 * same seed (sampling, augmentation). */
#define SPLIT_STREAM 0x53504c4954ull /* "SPLIT" */

void (ich_split_options_init)(ich_split_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_split_options defaults, *options = &defaults;
    memset(options, 0, sizeof *options);
    options->size = sizeof *options;
    options->ratios[0] = 0.8;
    options->ratios[1] = 0.1;
    options->ratios[2] = 0.1;
    options->seed = 0;
    options->stratify = 1;
    ich_options_init_write(caller, &defaults, sizeof defaults,
                           ICH_OPTIONS_V1_SIZE(ich_split_options, stratify));
}

static ich_status check_ratios(const double *r)
{
    double sum = 0;
    int bad = 0;
    for (int p = 0; p < PARTS; p++) {
        bad |= !isfinite(r[p]) || r[p] < 0;
        sum += r[p];
    }
    if (bad || !(fabs(sum - 1.0) <= 1e-6))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "split: ratios %g, %g, %g must be >= 0, finite and sum to 1 (sum %.9g)",
                        r[0], r[1], r[2], sum);
    return ICH_OK;
}

static ich_status read_options(const ich_split_options *in, ich_split_options *out)
{
    ich_split_options_init(out);
    ich_status st = ich_options_merge(out, sizeof *out, in,
                                      ICH_OPTIONS_V1_SIZE(ich_split_options, stratify),
                                      "ich_labels_split");
    return st != ICH_OK ? st : check_ratios(out->ratios);
}

/* ---- Groups ------------------------------------------------------------- */

typedef struct split_state {
    const ich_labels *labels;
    int64_t rows;
    int32_t columns;
    int64_t groups;
    int64_t *group_of;   /* per row */
    int64_t *size;       /* per group: rows */
    int64_t *positives;  /* per group and column */
    int64_t *total;      /* per column: positives in the table */
    int *part;           /* per group */
} split_state;

typedef struct grouped_row {
    const char *group;
    int64_t row;
} grouped_row;

static int by_group_then_row(const void *a, const void *b)
{
    const grouped_row *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* Number the groups by first appearance; a row without a group gets one of
 * its own. Returns the number of rows that had a group, or -1 when out of
 * memory. */
static int64_t number_groups(split_state *s)
{
    grouped_row *sorted = malloc((size_t)s->rows * sizeof *sorted);
    if (!sorted)
        return -1;
    int64_t grouped = 0;
    for (int64_t r = 0; r < s->rows; r++) {
        const char *group = ich_labels_group(s->labels, r);
        s->group_of[r] = -1;
        if (group[0])
            sorted[grouped++] = (grouped_row){group, r};
    }
    /* A group's rows are adjacent after sorting, its first row leading:
     * note for each row the first row of its group. */
    qsort(sorted, (size_t)grouped, sizeof *sorted, by_group_then_row);
    for (int64_t i = 0, first = 0; i < grouped; i++) {
        if (i > 0 && strcmp(sorted[i - 1].group, sorted[i].group) != 0)
            first = i;
        s->group_of[sorted[i].row] = sorted[first].row;
    }
    free(sorted);
    /* In row order, a group's first row comes before its others, so it has
     * its number by the time they look it up. */
    s->groups = 0;
    for (int64_t r = 0; r < s->rows; r++) {
        int64_t first = s->group_of[r];
        s->group_of[r] = first < 0 || first == r ? s->groups++ : s->group_of[first];
    }
    return grouped;
}

static void count_groups(split_state *s)
{
    int32_t L = s->columns;
    for (int64_t r = 0; r < s->rows; r++) {
        int64_t g = s->group_of[r];
        const float *v = ich_labels_values(s->labels, r);
        s->size[g]++;
        for (int32_t c = 0; c < L; c++) {
            int positive = v[c] >= 0.5f;
            s->positives[g * L + c] += positive;
            s->total[c] += positive;
        }
    }
}

/* ---- Order -------------------------------------------------------------- */

static int32_t floor_log2(int64_t n)
{
    int32_t k = 0;
    while (n > 1) {
        n >>= 1;
        k++;
    }
    return k;
}

/* What decides where a group comes in the placement order. */
typedef struct placement {
    int64_t key;        /* total positives of the group's rarest label */
    int32_t size_class; /* floor(log2(rows)) */
    int64_t rank;       /* position after the seeded shuffle */
    int64_t group;
} placement;

static int by_placement(const void *a, const void *b)
{
    const placement *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->size_class != y->size_class)
        return x->size_class > y->size_class ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* The groups in the order they are placed (see the top of the file). */
static ich_status placement_order(const split_state *s, const ich_split_options *o,
                                  int64_t *order)
{
    placement *p = malloc((size_t)s->groups * sizeof *p);
    if (!p)
        return ich_fail(ICH_ERR_NO_MEMORY, "split: out of memory");
    for (int64_t g = 0; g < s->groups; g++)
        order[g] = g;
    ich_rng rng = ich_rng_init(o->seed, SPLIT_STREAM, 0);
    ich_rng_shuffle_i64(&rng, order, s->groups);
    for (int64_t i = 0; i < s->groups; i++) {
        int64_t g = order[i];
        p[i] = (placement){INT64_MAX, floor_log2(s->size[g]), i, g};
        for (int32_t c = 0; o->stratify && c < s->columns; c++)
            if (s->positives[g * s->columns + c] > 0 && s->total[c] < p[i].key)
                p[i].key = s->total[c];
    }
    qsort(p, (size_t)s->groups, sizeof *p, by_placement);
    for (int64_t i = 0; i < s->groups; i++)
        order[i] = p[i].group;
    free(p);
    return ICH_OK;
}

/* ---- Assignment --------------------------------------------------------- */

/* What has been placed so far, per part and dimension: d = 0 counts rows,
 * d = 1 + c the positives of label column c. */
typedef struct tally {
    int32_t dims;                                  /* 1, or 1 + columns when stratifying */
    double have[PARTS][1 + ICH_LABELS_MAX_COLUMNS];
    double placed[1 + ICH_LABELS_MAX_COLUMNS];     /* sum over the parts */
    double weight[1 + ICH_LABELS_MAX_COLUMNS];     /* 1 / total^2: errors as shares */
} tally;

static double amount(const split_state *s, int64_t g, int32_t d)
{
    return d == 0 ? (double)s->size[g] : (double)s->positives[g * s->columns + d - 1];
}

/* The squared share error, over the parts and the dimensions the group
 * touches, of what has been placed so far once group g joins part `to`:
 * each part should hold ratio[p] of everything placed, at every step. */
static double error_if(const split_state *s, const tally *t, const double *ratios, int64_t g,
                       int to)
{
    double error = 0;
    for (int32_t d = 0; d < t->dims; d++) {
        double add = amount(s, g, d);
        if (add == 0)
            continue; /* the same for every choice of part */
        double placed = t->placed[d] + add, sum = 0;
        for (int p = 0; p < PARTS; p++) {
            double miss = t->have[p][d] + (p == to ? add : 0) - ratios[p] * placed;
            sum += miss * miss;
        }
        error += t->weight[d] * sum;
    }
    return error;
}

static void assign(split_state *s, const ich_split_options *o, const int64_t *order)
{
    tally t;
    memset(&t, 0, sizeof t);
    t.dims = o->stratify ? 1 + s->columns : 1;
    for (int32_t d = 0; d < t.dims; d++) {
        double total = d == 0 ? (double)s->rows : (double)s->total[d - 1];
        t.weight[d] = total > 0 ? 1.0 / (total * total) : 0;
    }
    for (int64_t i = 0; i < s->groups; i++) {
        int64_t g = order[i];
        int best = -1;
        double best_error = 0;
        for (int p = 0; p < PARTS; p++) {
            if (o->ratios[p] <= 0)
                continue;
            double e = error_if(s, &t, o->ratios, g, p);
            if (best < 0 || e < best_error)
                best = p, best_error = e;
        }
        s->part[g] = best;
        for (int32_t d = 0; d < t.dims; d++) {
            t.have[best][d] += amount(s, g, d);
            t.placed[d] += amount(s, g, d);
        }
    }
}

/* ---- Improvement ------------------------------------------------------- */

/* Most group pairs the swap passes look at in one split: all of them up to
 * a few thousand groups (large tables have groups small enough for the
 * greedy pass to be close already); a bound on time beyond that. */
#define SWAP_BUDGET 40000000.0
#define MAX_PASSES 50

/* Local search on the final objective F = sum over d, p of
 * weight[d] * (have[p][d] - ratio[p] * total[d])^2: move single groups to
 * another part, then swap pairs of groups between parts, keeping every
 * change that lowers F, until a pass changes nothing. */
typedef struct search {
    const split_state *s;
    int32_t dims;
    double *amounts;                              /* per group: dims values */
    double miss[PARTS][1 + ICH_LABELS_MAX_COLUMNS]; /* have - want */
    double weight[1 + ICH_LABELS_MAX_COLUMNS];
} search;

/* Change of F when part `from` loses z (per dimension) and `to` gains it. */
static double shift_delta(const search *x, const double *z, int from, int to)
{
    double delta = 0;
    for (int32_t d = 0; d < x->dims; d++)
        if (z[d] != 0)
            delta += x->weight[d] * 2 * z[d] * (z[d] + x->miss[to][d] - x->miss[from][d]);
    return delta;
}

static void shift(search *x, const double *z, int from, int to)
{
    for (int32_t d = 0; d < x->dims; d++) {
        x->miss[from][d] -= z[d];
        x->miss[to][d] += z[d];
    }
}

static int try_moves(search *x, const ich_split_options *o, const int64_t *order)
{
    int changed = 0;
    for (int64_t i = 0; i < x->s->groups; i++) {
        int64_t g = order[i];
        const double *z = x->amounts + g * x->dims;
        int from = x->s->part[g], best = -1;
        double best_delta = -1e-12;
        for (int p = 0; p < PARTS; p++) {
            if (p == from || o->ratios[p] <= 0)
                continue;
            double delta = shift_delta(x, z, from, p);
            if (delta < best_delta)
                best = p, best_delta = delta;
        }
        if (best >= 0) {
            shift(x, z, from, best);
            x->s->part[g] = best;
            changed = 1;
        }
    }
    return changed;
}

static int try_swaps(search *x, const int64_t *order, double *budget, double *z)
{
    int changed = 0;
    int64_t n = x->s->groups;
    for (int64_t i = 0; i < n && *budget > 0; i++) {
        int64_t g = order[i];
        for (int64_t j = i + 1; j < n; j++) {
            int64_t h = order[j];
            int a = x->s->part[g], b = x->s->part[h];
            if (a == b)
                continue;
            /* Part a gives g and takes h: it gains z = h - g. */
            for (int32_t d = 0; d < x->dims; d++)
                z[d] = x->amounts[h * x->dims + d] - x->amounts[g * x->dims + d];
            if (shift_delta(x, z, b, a) < -1e-12) {
                shift(x, z, b, a);
                x->s->part[g] = b;
                x->s->part[h] = a;
                changed = 1;
            }
        }
        *budget -= (double)(n - i - 1);
    }
    return changed;
}

static ich_status improve(split_state *s, const ich_split_options *o, const int64_t *order)
{
    search x;
    memset(&x, 0, sizeof x);
    x.s = s;
    x.dims = o->stratify ? 1 + s->columns : 1;
    x.amounts = malloc((size_t)s->groups * (size_t)x.dims * sizeof *x.amounts);
    double *z = malloc((size_t)x.dims * sizeof *z);
    if (!x.amounts || !z) {
        free(x.amounts);
        free(z);
        return ich_fail(ICH_ERR_NO_MEMORY, "split: out of memory");
    }
    for (int32_t d = 0; d < x.dims; d++) {
        double total = d == 0 ? (double)s->rows : (double)s->total[d - 1];
        x.weight[d] = total > 0 ? 1.0 / (total * total) : 0;
        for (int p = 0; p < PARTS; p++)
            x.miss[p][d] = -o->ratios[p] * total;
    }
    for (int64_t g = 0; g < s->groups; g++)
        for (int32_t d = 0; d < x.dims; d++) {
            double a = amount(s, g, d);
            x.amounts[g * x.dims + d] = a;
            x.miss[s->part[g]][d] += a;
        }
    double budget = SWAP_BUDGET;
    for (int pass = 0; pass < MAX_PASSES; pass++) {
        int changed = try_moves(&x, o, order);
        changed |= budget > 0 && try_swaps(&x, order, &budget, z);
        if (!changed)
            break;
    }
    free(x.amounts);
    free(z);
    return ICH_OK;
}

/* ---- Output ------------------------------------------------------------- */

static ich_status empty_like(const ich_labels *labels, ich_labels **out)
{
    int32_t columns = ich_labels_columns(labels);
    const char *names[ICH_LABELS_MAX_COLUMNS];
    if (columns < 1 || columns > ICH_LABELS_MAX_COLUMNS)
        return ich_fail(ICH_ERR_INTERNAL, "label table with %d columns", (int)columns);
    for (int32_t c = 0; c < columns; c++)
        names[c] = ich_labels_column_name(labels, c);
    return ich_labels_create(names, columns, out);
}

static ich_status write_parts(const split_state *s, ich_labels *parts[PARTS])
{
    ich_status status = ICH_OK;
    for (int p = 0; p < PARTS && status == ICH_OK; p++)
        status = empty_like(s->labels, &parts[p]);
    for (int64_t r = 0; r < s->rows && status == ICH_OK; r++)
        status = ich_labels_add(parts[s->part[s->group_of[r]]], ich_labels_id(s->labels, r),
                                ich_labels_values(s->labels, r), ich_labels_group(s->labels, r));
    return status;
}

static void log_result(const split_state *s, const ich_split_options *o,
                       ich_labels *const parts[PARTS])
{
    static const char *names[PARTS] = {"train", "validation", "test"};
    int64_t groups[PARTS] = {0};
    for (int64_t g = 0; g < s->groups; g++)
        groups[s->part[g]]++;
    for (int p = 0; p < PARTS; p++) {
        int64_t rows = ich_labels_rows(parts[p]);
        if (o->ratios[p] > 0 && rows == 0)
            ich_log(ICH_LOG_WARNING, "split: the %s part is empty (ratio %g, only %lld groups)",
                    names[p], o->ratios[p], (long long)s->groups);
        ich_log(ICH_LOG_INFO, "split: %s: %lld rows, %lld groups", names[p], (long long)rows,
                (long long)groups[p]);
    }
}

static void free_state(split_state *s)
{
    free(s->group_of);
    free(s->size);
    free(s->positives);
    free(s->total);
    free(s->part);
}

ich_status ich_labels_split(const ich_labels *labels, const ich_split_options *options,
                            ich_labels *parts[3])
{
    if (parts)
        parts[0] = parts[1] = parts[2] = NULL;
    if (!labels || !parts)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_split: NULL %s",
                        labels ? "parts" : "labels");
    ich_split_options o;
    ich_status status = read_options(options, &o);
    if (status != ICH_OK)
        return status;
    split_state s = {.labels = labels,
                     .rows = ich_labels_rows(labels),
                     .columns = ich_labels_columns(labels)};
    if (s.rows <= 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "split: the label table is empty");
    size_t n = (size_t)s.rows, L = (size_t)(s.columns > 0 ? s.columns : 1);
    int64_t *order = malloc(n * sizeof *order);
    s.group_of = malloc(n * sizeof *s.group_of);
    s.size = calloc(n, sizeof *s.size);
    s.positives = calloc(n * L, sizeof *s.positives);
    s.total = calloc(L, sizeof *s.total);
    s.part = malloc(n * sizeof *s.part);
    if (!order || !s.group_of || !s.size || !s.positives || !s.total || !s.part) {
        status = ich_fail(ICH_ERR_NO_MEMORY, "split: out of memory for %lld rows",
                          (long long)s.rows);
    } else {
        int64_t grouped = number_groups(&s);
        if (grouped < 0)
            status = ich_fail(ICH_ERR_NO_MEMORY, "split: out of memory");
        else if (grouped == 0)
            ich_log(ICH_LOG_WARNING, "split: no row has a group (patient): each image is its "
                    "own group, so one patient's images may land in several parts");
        if (status == ICH_OK) {
            count_groups(&s);
            status = placement_order(&s, &o, order);
        }
        if (status == ICH_OK) {
            assign(&s, &o, order);
            status = improve(&s, &o, order);
        }
        if (status == ICH_OK) {
            status = write_parts(&s, parts);
        }
        if (status == ICH_OK)
            log_result(&s, &o, parts);
    }
    if (status != ICH_OK)
        for (int p = 0; p < PARTS; p++) {
            ich_labels_free(parts[p]);
            parts[p] = NULL;
        }
    free(order);
    free_state(&s);
    return status;
}
