/* Tests for ich_labels_split() (<ich/labels.h>): no patient in two parts,
 * every row in exactly one part, row and label shares within the tolerances
 * stated below on a table of ~2000 rows / 200 patients with skewed,
 * patient-clustered labels, stratification measurably better than none,
 * reproducibility by seed, source order kept, and the errors (bad ratios,
 * empty table, NULLs), zero ratios and rows without groups. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* Tolerances, as the header states them: on this table each part's share of
 * the rows is within ROW_TOLERANCE of its ratio, and its share of each
 * label's positives within LABEL_TOLERANCE (absolute shares). */
#define ROW_TOLERANCE 0.01
#define LABEL_TOLERANCE 0.04

#define PATIENTS 200

/* ---- A table like the real one -------------------------------------------- */

/* ~2000 rows of 200 patients (1..19 slices each). A patient has each
 * subtype with a skewed probability (epidural rare, subdural common); the
 * patient's slices are then positive for it with probability 1/2, so labels
 * come in clusters as in real scans. "any" is the OR of the subtypes. */
static ich_labels *make_table(uint32_t seed, int with_groups)
{
    static const double patient_rate[5] = {0.1, 0.25, 0.15, 0.2, 0.3};
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    uint32_t state = seed * 2654435761u + 1;
    for (int p = 0; p < PATIENTS; p++) {
        int has[5];
        for (int l = 0; l < 5; l++)
            has[l] = (tu_rand(&state) % 10000) < patient_rate[l] * 10000;
        int slices = 1 + (int)(tu_rand(&state) % 19);
        char group[32];
        snprintf(group, sizeof group, "PAT%03d", p);
        for (int s = 0; s < slices; s++) {
            float v[6] = {0};
            for (int l = 0; l < 5; l++) {
                v[1 + l] = has[l] && (tu_rand(&state) & 1) ? 1.0f : 0.0f;
                if (v[1 + l] > 0)
                    v[0] = 1.0f;
            }
            char id[64];
            snprintf(id, sizeof id, "ID_%03d_%02d", p, s);
            assert_int_equal(ich_labels_add(t, id, v, with_groups ? group : NULL), ICH_OK);
        }
    }
    return t;
}

static ich_status split(const ich_labels *t, double a, double b, double c, uint64_t seed,
                        int stratify, ich_labels *parts[3])
{
    ich_split_options o;
    ich_split_options_init(&o);
    o.ratios[0] = a, o.ratios[1] = b, o.ratios[2] = c;
    o.seed = seed;
    o.stratify = stratify;
    return ich_labels_split(t, &o, parts);
}

static void free_parts(ich_labels *parts[3])
{
    for (int p = 0; p < 3; p++) {
        ich_labels_free(parts[p]);
        parts[p] = NULL;
    }
}

/* The largest |share - ratio| over the parts, for the rows (label -1) or
 * one label's positives. */
static double share_error(const ich_labels *t, ich_labels *const parts[3], const double *ratios,
                          int label)
{
    double total = 0, have[3] = {0};
    for (int p = 0; p < 3; p++)
        for (int64_t r = 0; r < ich_labels_rows(parts[p]); r++)
            have[p] += label < 0 ? 1.0 : ich_labels_values(parts[p], r)[label] >= 0.5f;
    for (int64_t r = 0; r < ich_labels_rows(t); r++)
        total += label < 0 ? 1.0 : ich_labels_values(t, r)[label] >= 0.5f;
    double worst = 0;
    for (int p = 0; p < 3; p++)
        worst = fmax(worst, fabs(have[p] / total - ratios[p]));
    return worst;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The distinct groups of a table, sorted (pointers into the table). */
static const char **group_set(const ich_labels *t, int64_t *count)
{
    int64_t n = ich_labels_rows(t);
    const char **g = malloc((size_t)(n ? n : 1) * sizeof *g);
    assert_non_null(g);
    for (int64_t r = 0; r < n; r++)
        g[r] = ich_labels_group(t, r);
    qsort(g, (size_t)n, sizeof *g, compare_strings);
    int64_t k = 0;
    for (int64_t r = 0; r < n; r++)
        if (k == 0 || strcmp(g[k - 1], g[r]) != 0)
            g[k++] = g[r];
    *count = k;
    return g;
}

/* Number of groups two sorted sets have in common. */
static int64_t common(const char **a, int64_t na, const char **b, int64_t nb)
{
    int64_t i = 0, j = 0, both = 0;
    while (i < na && j < nb) {
        int c = strcmp(a[i], b[j]);
        both += c == 0;
        i += c <= 0;
        j += c >= 0;
    }
    return both;
}

/* Every row of t is in exactly one part, with its values and group, and
 * the parts hold nothing else; rows keep the source order. */
static void assert_partition(const ich_labels *t, ich_labels *const parts[3])
{
    int64_t n = ich_labels_rows(t), total = 0;
    for (int p = 0; p < 3; p++) {
        assert_non_null(parts[p]);
        assert_int_equal(ich_labels_columns(parts[p]), ich_labels_columns(t));
        int64_t last = -1;
        for (int64_t r = 0; r < ich_labels_rows(parts[p]); r++) {
            int64_t src = ich_labels_find(t, ich_labels_id(parts[p], r));
            assert_true(src > last); /* present, and in source order */
            last = src;
            assert_memory_equal(ich_labels_values(parts[p], r), ich_labels_values(t, src),
                                sizeof(float) * (size_t)ich_labels_columns(t));
            assert_string_equal(ich_labels_group(parts[p], r), ich_labels_group(t, src));
        }
        total += ich_labels_rows(parts[p]);
    }
    assert_int_equal(total, n);
    for (int64_t r = 0; r < n; r++) {
        int in = 0;
        for (int p = 0; p < 3; p++)
            in += ich_labels_find(parts[p], ich_labels_id(t, r)) >= 0;
        assert_int_equal(in, 1);
    }
}

/* ---- Tests ------------------------------------------------------------------ */

static void test_no_patient_in_two_parts(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 3; seed++) {
        ich_labels *t = make_table(seed, 1), *parts[3];
        assert_int_equal(split(t, 0.8, 0.1, 0.1, seed, 1, parts), ICH_OK);
        assert_partition(t, parts);
        int64_t n[3];
        const char **g[3];
        for (int p = 0; p < 3; p++)
            g[p] = group_set(parts[p], &n[p]);
        int64_t all;
        const char **every = group_set(t, &all);
        assert_int_equal(n[0] + n[1] + n[2], all); /* no group counted twice */
        assert_int_equal(common(g[0], n[0], g[1], n[1]), 0);
        assert_int_equal(common(g[0], n[0], g[2], n[2]), 0);
        assert_int_equal(common(g[1], n[1], g[2], n[2]), 0);
        for (int p = 0; p < 3; p++) {
            assert_true(n[p] > 0);
            free(g[p]);
        }
        free(every);
        free_parts(parts);
        ich_labels_free(t);
    }
}

static void test_shares_within_tolerance(void **state)
{
    (void)state;
    static const double ratio_sets[3][3] = {{0.8, 0.1, 0.1}, {0.7, 0.15, 0.15}, {0.6, 0.2, 0.2}};
    for (uint32_t seed = 1; seed <= 4; seed++) {
        ich_labels *t = make_table(seed, 1);
        int64_t positives[6];
        assert_int_equal(ich_labels_positives(t, positives, 6), ICH_OK);
        assert_true(positives[1] >= 20 && positives[1] < positives[5]); /* skewed */
        for (int k = 0; k < 3; k++) {
            const double *r = ratio_sets[k];
            ich_labels *parts[3];
            assert_int_equal(split(t, r[0], r[1], r[2], 100 + seed, 1, parts), ICH_OK);
            double rows = share_error(t, parts, r, -1);
            if (rows > ROW_TOLERANCE)
                fail_msg("seed %u ratios %g/%g/%g: row share off by %.4f", seed, r[0], r[1],
                         r[2], rows);
            for (int l = 0; l < 6; l++) {
                double e = share_error(t, parts, r, l);
                if (e > LABEL_TOLERANCE)
                    fail_msg("seed %u ratios %g/%g/%g: label %d share off by %.4f", seed,
                             r[0], r[1], r[2], l, e);
            }
            free_parts(parts);
        }
        ich_labels_free(t);
    }
}

/* Without stratification only the rows are balanced: the labels' shares
 * stray further (averaged over seeds), so stratify must be doing work. */
static void test_stratify_helps(void **state)
{
    (void)state;
    const double r[3] = {0.8, 0.1, 0.1};
    double error[2] = {0, 0};
    for (uint32_t seed = 1; seed <= 8; seed++) {
        ich_labels *t = make_table(seed, 1);
        for (int stratify = 0; stratify <= 1; stratify++) {
            ich_labels *parts[3];
            assert_int_equal(split(t, r[0], r[1], r[2], seed, stratify, parts), ICH_OK);
            assert_partition(t, parts);
            for (int l = 0; l < 6; l++)
                error[stratify] += share_error(t, parts, r, l);
            if (!stratify) /* rows are still balanced */
                assert_true(share_error(t, parts, r, -1) <= ROW_TOLERANCE);
            free_parts(parts);
        }
        ich_labels_free(t);
    }
    print_message("mean label share error: %.4f unstratified, %.4f stratified\n",
                  error[0] / 48, error[1] / 48);
    assert_true(error[1] * 2 < error[0]);
}

/* Which part each row of t went to. */
static void parts_of(const ich_labels *t, ich_labels *const parts[3], int *where)
{
    for (int64_t r = 0; r < ich_labels_rows(t); r++) {
        where[r] = -1;
        for (int p = 0; p < 3; p++)
            if (ich_labels_find(parts[p], ich_labels_id(t, r)) >= 0)
                where[r] = p;
    }
}

static void test_reproducible_by_seed(void **state)
{
    (void)state;
    ich_labels *t = make_table(7, 1);
    int64_t n = ich_labels_rows(t);
    int *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    for (int stratify = 0; stratify <= 1; stratify++) {
        ich_labels *p1[3], *p2[3], *p3[3];
        assert_int_equal(split(t, 0.8, 0.1, 0.1, 42, stratify, p1), ICH_OK);
        assert_int_equal(split(t, 0.8, 0.1, 0.1, 42, stratify, p2), ICH_OK);
        assert_int_equal(split(t, 0.8, 0.1, 0.1, 43, stratify, p3), ICH_OK);
        parts_of(t, p1, a);
        parts_of(t, p2, b);
        assert_memory_equal(a, b, (size_t)n * sizeof *a);
        parts_of(t, p3, b);
        int64_t moved = 0;
        for (int64_t r = 0; r < n; r++)
            moved += a[r] != b[r];
        assert_true(moved > n / 20); /* another seed, another split */
        free_parts(p1);
        free_parts(p2);
        free_parts(p3);
    }
    free(a);
    free(b);
    ich_labels_free(t);
}

static void test_ratio_errors(void **state)
{
    (void)state;
    ich_labels *t = make_table(1, 1);
    const double bad[][3] = {{0.9, -0.1, 0.2}, {NAN, 0.1, 0.1},      {INFINITY, 0, 0},
                             {0.8, 0.1, 0.0},  {0.8, 0.1, 0.2},      {0, 0, 0},
                             {0.8, 0.1, 0.1 + 2e-6}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ich_labels *parts[3] = {(ich_labels *)1, (ich_labels *)1, (ich_labels *)1};
        assert_int_equal(split(t, bad[i][0], bad[i][1], bad[i][2], 0, 1, parts),
                         ICH_ERR_INVALID_ARGUMENT);
        assert_null(parts[0]);
        assert_null(parts[1]);
        assert_null(parts[2]);
        assert_non_null(strstr(ich_last_error(), "ratios"));
    }
    /* Within 1e-6 of 1 is fine. */
    ich_labels *parts[3];
    assert_int_equal(split(t, 0.8, 0.1, 0.1 + 5e-7, 0, 1, parts), ICH_OK);
    assert_partition(t, parts);
    free_parts(parts);
    ich_labels_free(t);
}

/* Options structs carry their size: an unset size is refused, NULL options
 * are the defaults. */
static void test_options_size(void **state)
{
    (void)state;
    ich_labels *t = make_table(1, 1), *parts[3];
    ich_split_options o;
    ich_split_options_init(&o);
    assert_int_equal(o.size, sizeof o);
    o.size = 0;
    assert_int_equal(ich_labels_split(t, &o, parts), ICH_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(ich_last_error(), "options->size"));
    o.size = sizeof(size_t) + sizeof(double);
    assert_int_equal(ich_labels_split(t, &o, parts), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_split(t, NULL, parts), ICH_OK);
    assert_partition(t, parts);
    free_parts(parts);
    ich_labels_free(t);
}

static void test_zero_ratio_gives_empty_part(void **state)
{
    (void)state;
    ich_labels *t = make_table(2, 1), *parts[3];
    assert_int_equal(split(t, 0.9, 0.0, 0.1, 5, 1, parts), ICH_OK);
    assert_partition(t, parts);
    assert_int_equal(ich_labels_rows(parts[1]), 0);
    assert_true(ich_labels_rows(parts[0]) > 0 && ich_labels_rows(parts[2]) > 0);
    const double r[3] = {0.9, 0.0, 0.1};
    assert_true(share_error(t, parts, r, -1) <= ROW_TOLERANCE);
    free_parts(parts);
    assert_int_equal(split(t, 0.0, 0.0, 1.0, 5, 1, parts), ICH_OK);
    assert_int_equal(ich_labels_rows(parts[0]), 0);
    assert_int_equal(ich_labels_rows(parts[1]), 0);
    assert_int_equal(ich_labels_rows(parts[2]), ich_labels_rows(t));
    free_parts(parts);
    ich_labels_free(t);
}

static void test_empty_table_and_nulls(void **state)
{
    (void)state;
    ich_labels *t = NULL, *parts[3] = {(ich_labels *)1, (ich_labels *)1, (ich_labels *)1};
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    assert_int_equal(ich_labels_split(t, NULL, parts), ICH_ERR_INVALID_ARGUMENT);
    assert_null(parts[0]);
    assert_null(parts[2]);
    assert_non_null(strstr(ich_last_error(), "empty"));
    assert_int_equal(ich_labels_split(NULL, NULL, parts), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_split(t, NULL, NULL), ICH_ERR_INVALID_ARGUMENT);
    float v[6] = {0};
    assert_int_equal(ich_labels_add(t, "one", v, "P"), ICH_OK);
    ich_split_options o;
    ich_split_options_init(&o);
    o.size = offsetof(ich_split_options, seed); /* too small */
    assert_int_equal(ich_labels_split(t, &o, parts), ICH_ERR_INVALID_ARGUMENT);
    /* NULL options are the defaults; one group goes to one part. */
    assert_int_equal(ich_labels_split(t, NULL, parts), ICH_OK);
    assert_partition(t, parts);
    free_parts(parts);
    ich_labels_free(t);
}

static int warnings;
static void count_warnings(ich_log_level level, const char *message, void *user)
{
    (void)user;
    if (level == ICH_LOG_WARNING && strstr(message, "no row has a group"))
        warnings++;
}

/* Without groups every row is its own group (and a warning says so): the
 * shares are then as fine as single rows allow. */
static void test_rows_without_groups(void **state)
{
    (void)state;
    ich_labels *t = make_table(3, 0), *parts[3];
    warnings = 0;
    ich_set_log_callback(count_warnings, NULL, ICH_LOG_WARNING);
    assert_int_equal(split(t, 0.8, 0.1, 0.1, 1, 1, parts), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_INFO);
    assert_int_equal(warnings, 1);
    assert_partition(t, parts);
    const double r[3] = {0.8, 0.1, 0.1};
    assert_true(share_error(t, parts, r, -1) <= 0.002);
    for (int l = 0; l < 6; l++)
        assert_true(share_error(t, parts, r, l) <= 0.01);
    free_parts(parts);

    /* Mixed: grouped rows stay together, ungrouped rows stand alone, and
     * no warning is logged. */
    ich_labels *m = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &m), ICH_OK);
    for (int i = 0; i < 300; i++) {
        float v[6] = {0};
        v[0] = v[1 + i % 5] = (i % 3 == 0) ? 1.0f : 0.0f;
        char id[32], group[16];
        snprintf(id, sizeof id, "R%03d", i);
        snprintf(group, sizeof group, "G%d", i % 7);
        assert_int_equal(ich_labels_add(m, id, v, i < 150 ? group : ""), ICH_OK);
    }
    warnings = 0;
    ich_set_log_callback(count_warnings, NULL, ICH_LOG_WARNING);
    assert_int_equal(split(m, 0.6, 0.2, 0.2, 9, 1, parts), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_INFO);
    assert_int_equal(warnings, 0);
    assert_partition(m, parts);
    for (int g = 0; g < 7; g++) { /* each G<g> in one part only */
        char group[16];
        snprintf(group, sizeof group, "G%d", g);
        int in = 0;
        for (int p = 0; p < 3; p++) {
            int here = 0;
            for (int64_t r = 0; r < ich_labels_rows(parts[p]); r++)
                here |= strcmp(ich_labels_group(parts[p], r), group) == 0;
            in += here;
        }
        assert_int_equal(in, 1);
    }
    free_parts(parts);
    ich_labels_free(m);
    ich_labels_free(t);
}

/* Few groups: whole groups still, no crash; three equal groups and equal
 * ratios give one group per part. */
static void test_few_groups(void **state)
{
    (void)state;
    ich_labels *t = NULL, *parts[3];
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    float v[6] = {1, 0, 0, 1, 0, 0};
    assert_int_equal(ich_labels_add(t, "a1", v, "A"), ICH_OK);
    assert_int_equal(ich_labels_add(t, "b1", v, "B"), ICH_OK);
    assert_int_equal(ich_labels_add(t, "a2", v, "A"), ICH_OK);
    assert_int_equal(split(t, 0.8, 0.1, 0.1, 0, 1, parts), ICH_OK);
    assert_partition(t, parts);
    assert_int_equal(ich_labels_rows(parts[0]), 3); /* 3/0/0 is the closest to 80/10/10 */
    free_parts(parts);
    assert_int_equal(ich_labels_add(t, "c1", v, "C"), ICH_OK);
    assert_int_equal(ich_labels_add(t, "b2", v, "B"), ICH_OK);
    assert_int_equal(ich_labels_add(t, "c2", v, "C"), ICH_OK);
    for (uint64_t seed = 0; seed < 5; seed++) {
        assert_int_equal(split(t, 0.34, 0.33, 0.33, seed, 1, parts), ICH_OK);
        assert_partition(t, parts);
        for (int p = 0; p < 3; p++) {
            assert_int_equal(ich_labels_rows(parts[p]), 2);
            assert_string_equal(ich_labels_group(parts[p], 0), ich_labels_group(parts[p], 1));
        }
        free_parts(parts);
    }
    ich_labels_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_patient_in_two_parts),
        cmocka_unit_test(test_shares_within_tolerance),
        cmocka_unit_test(test_stratify_helps),
        cmocka_unit_test(test_reproducible_by_seed),
        cmocka_unit_test(test_ratio_errors),
        cmocka_unit_test(test_options_size),
        cmocka_unit_test(test_zero_ratio_gives_empty_part),
        cmocka_unit_test(test_empty_table_and_nulls),
        cmocka_unit_test(test_rows_without_groups),
        cmocka_unit_test(test_few_groups),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
