/* Tests for balanced sampling (ich_labels_sample): each label gets at least
 * min(N, available) positives, negatives are drawn as asked, no image twice,
 * rows keep the source order, seeds reproduce, and the counts match a
 * reference computed here from the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* A table of n images with RSNA labels: subtype c positive with
 * probability rate[c] percent, any = OR. */
static ich_labels *make_table(int n, const int rate[5], uint32_t seed)
{
    ich_labels *labels;
    assert_int_equal(ich_labels_create(NULL, 0, &labels), ICH_OK);
    char id[32];
    for (int i = 0; i < n; i++) {
        float v[6] = {0};
        for (int c = 1; c < 6; c++) {
            v[c] = (int)(tu_rand(&seed) % 100) < rate[c - 1];
            if (v[c] != 0.0f)
                v[0] = 1.0f;
        }
        snprintf(id, sizeof id, "ID_%06d", i);
        char group[16];
        snprintf(group, sizeof group, "P%d", i / 10);
        assert_int_equal(ich_labels_add(labels, id, v, group), ICH_OK);
    }
    return labels;
}

static int64_t count_where(const ich_labels *labels, int column)
{
    int64_t n = 0;
    for (int64_t r = 0; r < ich_labels_rows(labels); r++) {
        const float *v = ich_labels_values(labels, r);
        if (column >= 0) {
            n += v[column] >= 0.5f;
        } else {
            int any = 0;
            for (int c = 0; c < ich_labels_columns(labels); c++)
                any |= v[c] >= 0.5f;
            n += !any;
        }
    }
    return n;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Checks every sample must pass: rows are source rows with their values
 * and groups, in source order, each once. */
static void check_subset(const ich_labels *source, const ich_labels *sample)
{
    int64_t last = -1;
    for (int64_t r = 0; r < ich_labels_rows(sample); r++) {
        int64_t s = ich_labels_find(source, ich_labels_id(sample, r));
        assert_true(s > last); /* source order, so also no duplicates */
        last = s;
        assert_memory_equal(ich_labels_values(sample, r), ich_labels_values(source, s),
                            6 * sizeof(float));
        assert_string_equal(ich_labels_group(sample, r), ich_labels_group(source, s));
    }
}

static int same_ids(const ich_labels *a, const ich_labels *b)
{
    if (ich_labels_rows(a) != ich_labels_rows(b))
        return 0;
    for (int64_t r = 0; r < ich_labels_rows(a); r++)
        if (strcmp(ich_labels_id(a, r), ich_labels_id(b, r)) != 0)
            return 0;
    return 1;
}

static void test_defaults(void **state)
{
    (void)state;
    ich_sample_options o;
    memset(&o, 0xff, sizeof o);
    ich_sample_options_init(&o);
    assert_int_equal(o.size, sizeof o);
    assert_int_equal(o.per_label, 10000);
    assert_int_equal(o.seed, 0);
    assert_int_equal(o.negatives, 1);
    (ich_sample_options_init)(NULL); /* no crash (the function: the macro needs a struct) */
}

static void test_balanced(void **state)
{
    (void)state;
    const int rate[5] = {2, 10, 5, 20, 1}; /* epidural 2 %, ... subdural 1 % */
    ich_labels *labels = make_table(3000, rate, 42);
    ich_sample_options o;
    ich_sample_options_init(&o);
    o.per_label = 50;
    o.seed = 7;
    ich_labels *sample = NULL;
    assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_OK);
    check_subset(labels, sample);

    /* reference: each label's draw gives min(N, available) positives, the
     * union can only add to them; negatives are drawn from rows without
     * any positive, which no label draw takes, so their count is exact */
    int64_t union_max = 0;
    for (int c = 0; c < 6; c++) {
        int64_t available = count_where(labels, c);
        int64_t want = min64(o.per_label, available);
        int64_t got = count_where(sample, c);
        if (got < want || got > available)
            fail_msg("column %d: %lld positives, want %lld..%lld", c, (long long)got,
                     (long long)want, (long long)available);
        union_max += want;
    }
    int64_t negatives = count_where(sample, -1);
    assert_int_equal(negatives, min64(o.per_label, count_where(labels, -1)));
    assert_true(ich_labels_rows(sample) <= union_max + negatives);
    /* the rare label (subdural, ~30 rows) is taken whole */
    assert_true(count_where(labels, 5) < 50);
    assert_int_equal(count_where(sample, 5), count_where(labels, 5));

    /* same seed, same sample; another seed, another one */
    ich_labels *again = NULL, *other = NULL;
    assert_int_equal(ich_labels_sample(labels, &o, &again), ICH_OK);
    assert_true(same_ids(sample, again));
    o.seed = 8;
    assert_int_equal(ich_labels_sample(labels, &o, &other), ICH_OK);
    assert_false(same_ids(sample, other));
    check_subset(labels, other);
    ich_labels_free(again);
    ich_labels_free(other);
    ich_labels_free(sample);

    /* without negatives: no row without a positive label */
    o.negatives = 0;
    assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_OK);
    assert_int_equal(count_where(sample, -1), 0);
    ich_labels_free(sample);

    /* N above every count: everything positive plus all negatives */
    o.negatives = 1;
    o.per_label = 1000000;
    assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_OK);
    assert_int_equal(ich_labels_rows(sample), ich_labels_rows(labels));
    ich_labels_free(sample);
    ich_labels_free(labels);
}

/* With one positive label per row and no overlaps, the sample has exactly
 * min(N, available) rows per label. */
static void test_exact_counts(void **state)
{
    (void)state;
    const char *names[] = {"a", "b", "c"};
    ich_labels *labels;
    assert_int_equal(ich_labels_create(names, 3, &labels), ICH_OK);
    const int per_class[4] = {40, 7, 25, 60}; /* a, b, c, none */
    char id[16];
    int k = 0;
    for (int cls = 0; cls < 4; cls++)
        for (int i = 0; i < per_class[cls]; i++) {
            float v[3] = {0, 0, 0};
            if (cls < 3)
                v[cls] = 1;
            snprintf(id, sizeof id, "x%d", k++);
            assert_int_equal(ich_labels_add(labels, id, v, NULL), ICH_OK);
        }
    ich_sample_options o;
    ich_sample_options_init(&o);
    o.per_label = 20;
    ich_labels *sample;
    assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_OK);
    assert_int_equal(count_where(sample, 0), 20);
    assert_int_equal(count_where(sample, 1), 7);
    assert_int_equal(count_where(sample, 2), 20);
    assert_int_equal(count_where(sample, -1), 20);
    assert_int_equal(ich_labels_rows(sample), 67);
    assert_string_equal(ich_labels_column_name(sample, 2), "c");
    ich_labels_free(sample);

    /* every seed draws a different subset of label a, all about uniform:
     * over many seeds each of the 40 rows is drawn about half the time */
    int drawn[40] = {0};
    for (uint64_t seed = 0; seed < 400; seed++) {
        o.seed = seed;
        assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_OK);
        for (int64_t r = 0; r < ich_labels_rows(sample); r++) {
            int i = atoi(ich_labels_id(sample, r) + 1);
            if (i < 40)
                drawn[i]++;
        }
        ich_labels_free(sample);
    }
    for (int i = 0; i < 40; i++)
        if (drawn[i] < 150 || drawn[i] > 250) /* mean 200, sd 10 */
            fail_msg("row %d drawn %d times of 400", i, drawn[i]);
    ich_labels_free(labels);
}

static void test_errors(void **state)
{
    (void)state;
    ich_labels *labels, *sample = (ich_labels *)1;
    assert_int_equal(ich_labels_create(NULL, 0, &labels), ICH_OK);
    ich_sample_options o;
    ich_sample_options_init(&o);
    /* empty table: an empty sample */
    assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_OK);
    assert_int_equal(ich_labels_rows(sample), 0);
    assert_int_equal(ich_labels_columns(sample), 6);
    ich_labels_free(sample);
    /* NULL options: the defaults */
    assert_int_equal(ich_labels_sample(labels, NULL, &sample), ICH_OK);
    ich_labels_free(sample);
    o.per_label = 0;
    sample = (ich_labels *)1;
    assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_ERR_INVALID_ARGUMENT);
    assert_null(sample);
    o.per_label = 5;
    o.size = 8;
    assert_int_equal(ich_labels_sample(labels, &o, &sample), ICH_ERR_INVALID_ARGUMENT);
    o.size = sizeof o;
    assert_int_equal(ich_labels_sample(NULL, &o, &sample), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_sample(labels, &o, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_labels_free(labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_balanced),
        cmocka_unit_test(test_exact_counts),
        cmocka_unit_test(test_errors),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
