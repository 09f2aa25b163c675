/* Tests for <ich/phantom.h>: options and their errors; byte-identical files
 * for any thread count; labels.csv, metadata.csv, scans.csv and the DICOM
 * files consistent with ich_phantom_slice() and with each other; tissue HU
 * ranges measured on rendered slices; and where each hemorrhage type lands,
 * measured by difference between the same patient drawn with prevalence 1
 * (one type only) and prevalence 0. */
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

static const char *const SUBTYPES[6] = {"any", "epidural", "intraparenchymal",
                                        "intraventricular", "subarachnoid", "subdural"};
enum { EPIDURAL, PARENCHYMAL, VENTRICULAR, SUBARACHNOID, SUBDURAL };

static ich_phantom_options small_options(void)
{
    ich_phantom_options o;
    ich_phantom_options_init(&o);
    o.patients = 2;
    o.studies_per_patient = 2;
    o.slices = 6;
    o.rows = o.columns = 64;
    o.prevalence = 0.8;
    o.threads = 1;
    return o;
}

/* ---- Options and errors ------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    ich_phantom_options o;
    memset(&o, 0x55, sizeof o);
    ich_phantom_options_init(&o);
    assert_int_equal(o.size, sizeof o);
    assert_int_equal(o.patients, 20);
    assert_int_equal(o.studies_per_patient, 1);
    assert_int_equal(o.slices, 24);
    assert_int_equal(o.rows, 512);
    assert_int_equal(o.columns, 512);
    assert_true(o.prevalence == 0.5 && o.multiple == 0.25);
    assert_true(o.size_min == 0.4 && o.size_max == 1.0 && o.noise == 6.0);
    for (int k = 0; k < 5; k++)
        assert_true(o.type_weights[k] == 0);
    assert_int_equal(o.layout, ICH_PHANTOM_FLAT);
    assert_int_equal(o.threads, 0);
    assert_null(o.progress);
    (ich_phantom_options_init)(NULL); /* no crash (the function: the macro needs a struct) */
}

static void expect_invalid(const ich_phantom_options *o, const char *dir)
{
    float hu[64 * 64];
    assert_int_equal(ich_phantom_slice(o, 0, 0, 0, hu, 64 * 64, NULL, NULL, 0),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_true(strlen(ich_last_error()) > 0);
    assert_int_equal(ich_phantom_write(dir, o, NULL), ICH_ERR_INVALID_ARGUMENT);
}

static void test_bad_options(void **state)
{
    const char *dir = *state;
    ich_phantom_options o;
#define BAD(field, value)             \
    do {                              \
        o = small_options();          \
        o.field = value;              \
        expect_invalid(&o, dir);      \
    } while (0)
    BAD(size, sizeof o - 1);
    BAD(patients, 0);
    BAD(patients, -3);
    BAD(studies_per_patient, 0);
    BAD(slices, 0);
    BAD(slices, 100000);
    BAD(rows, 15);
    BAD(columns, 5000);
    BAD(prevalence, -0.1);
    BAD(prevalence, 1.5);
    BAD(prevalence, NAN);
    BAD(multiple, 2);
    BAD(size_min, 0);
    BAD(size_max, INFINITY);
    BAD(noise, -1);
    BAD(type_weights[2], -1);
    BAD(layout, 7);
    BAD(threads, -2);
    o = small_options();
    o.size_min = 0.9;
    o.size_max = 0.5;
    expect_invalid(&o, dir);
#undef BAD
    /* Nothing was written by the failed calls. */
    assert_int_equal(tu_dir_count(dir, NULL, 0), 0);

    o = small_options();
    float hu[64 * 64];
    char id[16];
    assert_int_equal(ich_phantom_write(NULL, &o, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_phantom_write("", &o, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 0, NULL, 64 * 64, NULL, NULL, 0),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_phantom_slice(&o, 2, 0, 0, hu, 64 * 64, NULL, NULL, 0),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_phantom_slice(&o, 0, 2, 0, hu, 64 * 64, NULL, NULL, 0),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 6, hu, 64 * 64, NULL, NULL, 0),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_phantom_slice(&o, -1, 0, 0, hu, 64 * 64, NULL, NULL, 0),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 0, hu, 64 * 63, NULL, NULL, 0),
                     ICH_ERR_SHAPE);
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 0, hu, 64 * 64, NULL, id, 8),
                     ICH_ERR_INVALID_ARGUMENT);
    /* NULL options are the defaults (512 x 512). */
    assert_int_equal(ich_phantom_slice(NULL, 0, 0, 0, hu, 64 * 64, NULL, NULL, 0),
                     ICH_ERR_SHAPE);
    assert_int_equal(ich_phantom_slice(&o, 1, 1, 5, hu, 64 * 64, NULL, id, sizeof id), ICH_OK);
    assert_int_equal(strlen(id), 13);
    assert_memory_equal(id, "ID_", 3);
}

/* ---- Files --------------------------------------------------------------- */

/* Compare every file under a and b (same names, same bytes); returns the
 * number of files compared, or -1 on a difference. */
static int compare_trees(const char *a, const char *b)
{
    DIR *d = opendir(a);
    if (!d)
        return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && count >= 0) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char pa[4096], pb[4096];
        tu_join(pa, sizeof pa, a, e->d_name);
        tu_join(pb, sizeof pb, b, e->d_name);
        struct stat st;
        stat(pa, &st);
        if (S_ISDIR(st.st_mode)) {
            int n = compare_trees(pa, pb);
            count = n < 0 ? -1 : count + n;
            continue;
        }
        size_t na = 0, nb = 0;
        uint8_t *da = tu_read_file(pa, &na), *db = tu_read_file(pb, &nb);
        if (!da || !db || na != nb || memcmp(da, db, na) != 0)
            count = -1;
        else
            count++;
        free(da);
        free(db);
    }
    closedir(d);
    return count;
}

static int files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    uint8_t *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    int same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

static void test_same_files_for_any_thread_count(void **state)
{
    const char *dir = *state;
    char a[4096], b[4096], c[4096], path_a[4200], path_c[4200];
    tu_join(a, sizeof a, dir, "one");
    tu_join(b, sizeof b, dir, "two");
    tu_join(c, sizeof c, dir, "other-seed");
    ich_phantom_options o = small_options();
    o.seed = 42;
    int64_t written = 0;
    assert_int_equal(ich_phantom_write(a, &o, &written), ICH_OK);
    assert_int_equal(written, 2 * 2 * 6);
    o.threads = 2;
    assert_int_equal(ich_phantom_write(b, &o, NULL), ICH_OK);
    /* 24 DICOM files and 3 CSVs, identical. */
    assert_int_equal(compare_trees(a, b), 27);
    tu_join(path_a, sizeof path_a, a, "images");
    assert_int_equal(tu_dir_count(path_a, NULL, 0), 24);

    o.seed = 43;
    assert_int_equal(ich_phantom_write(c, &o, NULL), ICH_OK);
    tu_join(path_a, sizeof path_a, a, "labels.csv");
    tu_join(path_c, sizeof path_c, c, "labels.csv");
    assert_false(files_equal(path_a, path_c)); /* other IDs */
    float h42[64 * 64], h43[64 * 64];
    o.seed = 42;
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 3, h42, 64 * 64, NULL, NULL, 0), ICH_OK);
    o.seed = 43;
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 3, h43, 64 * 64, NULL, NULL, 0), ICH_OK);
    assert_memory_not_equal(h42, h43, sizeof h42);
}

static void test_tree_layout(void **state)
{
    const char *dir = *state;
    ich_phantom_options o = small_options();
    o.layout = ICH_PHANTOM_TREE;
    o.threads = 2;
    assert_int_equal(ich_phantom_write(dir, &o, NULL), ICH_OK);
    char images[4096], names[4096], patient[4200], series[4300];
    tu_join(images, sizeof images, dir, "images");
    assert_int_equal(tu_dir_count(images, names, sizeof names), 2); /* patients */
    char first[64];
    sscanf(names, "%63s", first);
    tu_join(patient, sizeof patient, images, first);
    assert_int_equal(tu_dir_count(patient, names, sizeof names), 2); /* studies */
    sscanf(names, "%63s", first);
    tu_join(series, sizeof series, patient, first);
    assert_int_equal(tu_dir_count(series, NULL, 0), 6); /* slices */
}

/* ---- CSVs ---------------------------------------------------------------- */

/* The lines of a text file (without line ends), NULL-terminated. */
static char **read_lines(const char *path, int *count)
{
    size_t size = 0;
    char *text = (char *)tu_read_file(path, &size);
    assert_non_null(text);
    char **lines = calloc(size + 2, sizeof *lines);
    int n = 0;
    char *start = text;
    for (size_t i = 0; i < size; i++) {
        if (text[i] == '\n') {
            text[i] = '\0';
            lines[n++] = strdup(start);
            start = text + i + 1;
        }
    }
    assert_true(start == text + size); /* ends with a newline */
    free(text);
    *count = n;
    return lines;
}

static void free_lines(char **lines, int n)
{
    for (int i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static void test_csvs_match_slices_and_dicoms(void **state)
{
    const char *dir = *state;
    ich_phantom_options o = small_options();
    o.patients = 3;
    o.rows = 80;
    o.columns = 96;
    o.threads = 2;
    o.seed = 5;
    assert_int_equal(ich_phantom_write(dir, &o, NULL), ICH_OK);
    char path[4200];
    int nl, nm, ns;
    char **lab = read_lines(tu_join(path, sizeof path, dir, "labels.csv"), &nl);
    char **meta = read_lines(tu_join(path, sizeof path, dir, "metadata.csv"), &nm);
    char **scans = read_lines(tu_join(path, sizeof path, dir, "scans.csv"), &ns);
    int slices = 3 * 2 * 6;
    assert_int_equal(nl, 1 + 6 * slices);
    assert_int_equal(nm, 1 + slices);
    assert_int_equal(ns, 1 + 3 * 2);
    assert_string_equal(lab[0], "ID,Label");
    assert_string_equal(meta[0], "ID,patient,study,series,instance,z");
    assert_string_equal(scans[0], "patient,scan,any,epidural,intraparenchymal,"
                                  "intraventricular,subarachnoid,subdural");

    size_t n = (size_t)o.rows * o.columns;
    float *hu = malloc(n * sizeof *hu);
    int item = 0, positives = 0;
    for (int p = 0; p < 3; p++) {
        char first_patient[32] = "";
        for (int s = 0; s < 2; s++) {
            int scan[6] = {0};
            char series[32] = "";
            double last_z = -1e9;
            for (int k = 0; k < 6; k++, item++) {
                float labels[6];
                char id[16];
                assert_int_equal(ich_phantom_slice(&o, p, s, k, hu, n, labels, id, sizeof id),
                                 ICH_OK);
                /* labels.csv: six rows per image in the RSNA order. */
                int any = 0;
                for (int c = 0; c < 6; c++) {
                    char expect[96];
                    snprintf(expect, sizeof expect, "%s_%s,%d", id, SUBTYPES[c], (int)labels[c]);
                    assert_string_equal(lab[1 + 6 * item + c], expect);
                    scan[c] |= (int)labels[c];
                    if (c > 0)
                        any |= (int)labels[c];
                }
                assert_int_equal((int)labels[0], any); /* any = OR of the types */
                positives += any;
                /* metadata.csv and the DICOM header agree. */
                char mid[32], mpatient[32], mstudy[32], mseries[32];
                int instance;
                double z;
                for (char *c = meta[1 + item]; *c; c++)
                    if (*c == ',')
                        *c = ' ';
                assert_int_equal(sscanf(meta[1 + item], "%31s %31s %31s %31s %d %lf", mid,
                                        mpatient, mstudy, mseries, &instance, &z), 6);
                assert_string_equal(mid, id);
                assert_int_equal(instance, k + 1);
                assert_true(z > last_z);
                last_z = z;
                if (k == 0)
                    snprintf(series, sizeof series, "%s", mseries);
                assert_string_equal(mseries, series);
                if (!first_patient[0])
                    snprintf(first_patient, sizeof first_patient, "%s", mpatient);
                assert_string_equal(mpatient, first_patient);

                char file[256];
                snprintf(file, sizeof file, "images/%s.dcm", id);
                ich_dicom *dcm = NULL;
                assert_int_equal(ich_dicom_read(tu_join(path, sizeof path, dir, file), &dcm),
                                 ICH_OK);
                ich_dicom_info info;
                memset(&info, 0, sizeof info);
                info.size = sizeof info;
                assert_int_equal(ich_dicom_get_info(dcm, &info), ICH_OK);
                assert_int_equal(info.rows, o.rows);
                assert_int_equal(info.columns, o.columns);
                assert_int_equal(info.sample_bits, 16);
                assert_int_equal(info.pixel_representation, 1);
                assert_true(info.rescale_slope == 1.0 && info.rescale_intercept == -1024.0);
                assert_string_equal(info.patient_id, mpatient);
                assert_int_equal(info.instance_number, k + 1);
                assert_true(fabs(info.image_position[2] - z) < 1e-3);
                const float *dhu = ich_dicom_hu(dcm);
                assert_memory_equal(dhu, hu, n * sizeof *hu);
                ich_dicom_free(dcm);
            }
            char expect[256];
            int len = snprintf(expect, sizeof expect, "%s,%s", first_patient, series);
            for (int c = 0; c < 6; c++)
                len += snprintf(expect + len, sizeof expect - len, ",%d", scan[c]);
            assert_string_equal(scans[1 + p * 2 + s], expect);
        }
    }
    assert_true(positives > 0);
    /* Image IDs are unique. */
    for (int i = 1; i <= slices; i++)
        for (int j = i + 1; j <= slices; j++)
            assert_true(strncmp(meta[i], meta[j], 13) != 0);
    free(hu);
    free_lines(lab, nl);
    free_lines(meta, nm);
    free_lines(scans, ns);
}

static void test_prevalence_extremes(void **state)
{
    (void)state;
    ich_phantom_options o = small_options();
    o.patients = 6;
    o.slices = 24;
    o.rows = o.columns = 128;
    size_t n = 128 * 128;
    float *hu = malloc(n * sizeof *hu);
    for (int prevalence = 0; prevalence <= 1; prevalence++) {
        o.prevalence = prevalence;
        for (int p = 0; p < o.patients; p++) {
            for (int s = 0; s < 2; s++) {
                int anys = 0;
                for (int k = 0; k < o.slices; k++) {
                    float labels[6];
                    assert_int_equal(ich_phantom_slice(&o, p, s, k, hu, n, labels, NULL, 0),
                                     ICH_OK);
                    if (prevalence == 0)
                        for (int c = 0; c < 6; c++)
                            assert_true(labels[c] == 0);
                    anys += labels[0] != 0;
                }
                if (prevalence == 1)
                    assert_true(anys >= 2); /* a bleed spans several slices */
            }
        }
    }
    free(hu);
}

/* ---- Tissues --------------------------------------------------------------- */

static void test_tissue_hu(void **state)
{
    (void)state;
    ich_phantom_options o = small_options();
    o.patients = 4;
    o.slices = 24;
    o.rows = o.columns = 256;
    o.prevalence = 0;
    o.noise = 0;
    size_t n = 256 * 256;
    float *hu = malloc(n * sizeof *hu);
    double mm = 230.0 / 256;
    for (int p = 0; p < o.patients; p++) {
        assert_int_equal(ich_phantom_slice(&o, p, 0, 13, hu, n, NULL, NULL, 0), ICH_OK);
        /* Air in the corners. */
        assert_true(hu[0] == -1000 && hu[255] == -1000 && hu[n - 1] == -1000);
        long bone = 0, brain = 0, csf = 0;
        double brain_sum = 0;
        for (size_t i = 0; i < n; i++) {
            double v = hu[i];
            if (v >= 500) {
                bone++;
                assert_true(v >= 700 && v <= 1900);
            }
            int r = (int)(i / 256), c = (int)(i % 256);
            double dx = (c - 127.5) * mm, dy = (r - 127.5) * mm;
            if (hypot(dx, dy) < 40) { /* deep brain: parenchyma and ventricles */
                if (v >= 18) {
                    brain++;
                    brain_sum += v;
                    assert_true(v <= 45);
                } else {
                    csf++;
                    assert_true(v >= 0 && v <= 15);
                }
            }
        }
        assert_true(bone > 1000);
        assert_true(csf > 50); /* the ventricles */
        assert_true(brain > 5000);
        double mean = brain_sum / brain;
        assert_true(mean >= 20 && mean <= 45);

        /* The skull's thickness varies: bone run length on rays from the
         * centre of the head. */
        int shortest = 1 << 30, longest = 0;
        for (int ray = 0; ray < 16; ray++) {
            double a = ray * 3.14159265 / 8;
            int run = 0;
            for (double d = 0; d < 128; d += 0.25) {
                int c = (int)(127.5 + d * cos(a)), r = (int)(127.5 + d * sin(a));
                if (c < 0 || r < 0 || c > 255 || r > 255)
                    break;
                run += hu[r * 256 + c] >= 700;
            }
            shortest = run < shortest ? run : shortest;
            longest = run > longest ? run : longest;
        }
        assert_true(shortest > 0);
        assert_true(longest > 1.2 * shortest);
    }
    /* Slices vary along z: the head is smaller near the vertex. */
    long low = 0, high = 0;
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 8, hu, n, NULL, NULL, 0), ICH_OK);
    for (size_t i = 0; i < n; i++)
        low += hu[i] > -500;
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 22, hu, n, NULL, NULL, 0), ICH_OK);
    for (size_t i = 0; i < n; i++)
        high += hu[i] > -500;
    assert_true(high < 0.8 * low);
    /* Noise: sd close to the option in a flat region (the air). */
    o.noise = 6;
    assert_int_equal(ich_phantom_slice(&o, 0, 0, 13, hu, n, NULL, NULL, 0), ICH_OK);
    double s1 = 0, s2 = 0;
    int m = 0;
    for (int r = 0; r < 20; r++)
        for (int c = 0; c < 20; c++, m++) {
            s1 += hu[r * 256 + c];
            s2 += hu[r * 256 + c] * hu[r * 256 + c];
        }
    double sd = sqrt(s2 / m - (s1 / m) * (s1 / m));
    assert_true(fabs(s1 / m + 1000) < 2 && sd > 4.5 && sd < 7.5);
    free(hu);
}

/* ---- Where the blood goes ---------------------------------------------------- */

#define N 256
#define PIXEL_MM (230.0 / N)

/* Is there a pixel >= 700 HU within `radius` pixels of (r, c)? */
static int bone_near(const float *hu, int r, int c, int radius)
{
    for (int dr = -radius; dr <= radius; dr++)
        for (int dc = -radius; dc <= radius; dc++) {
            int rr = r + dr, cc = c + dc;
            if (dr * dr + dc * dc > radius * radius || rr < 0 || cc < 0 || rr >= N || cc >= N)
                continue;
            if (hu[rr * N + cc] >= 700)
                return 1;
        }
    return 0;
}

typedef struct placement {
    long blood, edema, touching_bone, near_bone, interior;
    int slices_positive;
    long min_count, max_count;
    double max_center_mm;
} placement;

/* Draw every slice of `patients` patients with one type (prevalence 1) and
 * without (prevalence 0), check what changed, and sum it up. */
static placement measure(int type, int patients)
{
    ich_phantom_options with = small_options(), without;
    with.patients = patients;
    with.studies_per_patient = 1;
    with.slices = 24;
    with.rows = with.columns = N;
    with.noise = 0;
    with.prevalence = 1;
    with.multiple = 0.9; /* ignored: only one type has weight */
    with.type_weights[type] = 1;
    without = with;
    without.prevalence = 0;
    float *a = malloc(N * N * sizeof *a), *b = malloc(N * N * sizeof *b);
    placement m = {0};
    for (int p = 0; p < patients; p++) {
        long series_min = 1L << 40, series_max = 0;
        int positive = 0;
        for (int k = 0; k < with.slices; k++) {
            float la[6], lb[6];
            assert_int_equal(ich_phantom_slice(&with, p, 0, k, a, N * N, la, NULL, 0), ICH_OK);
            assert_int_equal(ich_phantom_slice(&without, p, 0, k, b, N * N, lb, NULL, 0),
                             ICH_OK);
            long count = 0;
            for (int i = 0; i < N * N; i++) {
                if (a[i] == b[i])
                    continue;
                int r = i / N, c = i % N;
                if (a[i] < b[i]) {
                    /* Only an intraparenchymal bleed's edema darkens brain. */
                    assert_int_equal(type, PARENCHYMAL);
                    assert_true(b[i] >= 20 && b[i] <= 45 && a[i] >= 10 && a[i] <= 20);
                    m.edema++;
                    continue;
                }
                assert_true(a[i] >= 50 && a[i] <= 90); /* blood */
                assert_true(b[i] > -10 && b[i] < 50);  /* over CSF or brain, never bone */
                count++;
                m.touching_bone += bone_near(b, r, c, 1);
                m.near_bone += bone_near(b, r, c, (int)(5.0 / PIXEL_MM));
                if (type == VENTRICULAR || type == SUBARACHNOID)
                    assert_true(b[i] >= 0 && b[i] <= 15); /* was CSF */
                if (type == PARENCHYMAL)
                    assert_true(b[i] >= 20 && b[i] <= 45); /* was brain */
                /* Blood all around within one pixel: not a thin line. */
                int full = r > 0 && c > 0 && r < N - 1 && c < N - 1;
                for (int dr = -1; full && dr <= 1; dr++)
                    for (int dc = -1; dc <= 1; dc++)
                        full &= a[(r + dr) * N + c + dc] >= 50 && a[(r + dr) * N + c + dc] <= 90;
                m.interior += full;
                double d = hypot((c - N / 2 + 0.5) * PIXEL_MM, (r - N / 2 + 0.5) * PIXEL_MM);
                if (d > m.max_center_mm)
                    m.max_center_mm = d;
            }
            m.blood += count;
            /* Labels follow the drawn blood; no other type is set. */
            for (int c = 1; c < 6; c++)
                if (c != type + 1)
                    assert_true(la[c] == 0);
            assert_true(la[0] == la[type + 1]);
            assert_true(lb[0] == 0);
            if (count == 0)
                assert_true(la[type + 1] == 0);
            if (count >= 40)
                assert_true(la[type + 1] == 1);
            if (la[type + 1] == 1) {
                assert_true(count >= 3);
                positive++;
                series_min = count < series_min ? count : series_min;
                series_max = count > series_max ? count : series_max;
            }
        }
        /* Each series bleeds on several neighbouring slices. */
        assert_true(positive >= 2);
        m.slices_positive += positive;
        if (series_max > m.max_count)
            m.max_count = series_max;
        if (m.min_count == 0 || series_min < m.min_count)
            m.min_count = series_min;
    }
    free(a);
    free(b);
    return m;
}

static void test_epidural_and_subdural_lie_against_the_skull(void **state)
{
    (void)state;
    for (int type = EPIDURAL; type <= SUBDURAL; type += SUBDURAL - EPIDURAL) {
        placement m = measure(type, 5);
        assert_true(m.blood > 500);
        assert_true(m.touching_bone > m.blood / 20); /* on the inner table */
        assert_true(m.near_bone > m.blood / 2);      /* a layer along the skull */
        assert_true(m.max_count > 3 * m.min_count);  /* size changes along z */
    }
}

static void test_intraventricular_is_in_the_ventricles(void **state)
{
    (void)state;
    placement m = measure(VENTRICULAR, 5);
    assert_true(m.blood > 100);
    assert_int_equal(m.near_bone, 0);
    assert_true(m.max_center_mm < 45); /* the ventricles are central */
}

static void test_intraparenchymal_is_inside_the_brain(void **state)
{
    (void)state;
    placement m = measure(PARENCHYMAL, 12);
    assert_true(m.blood > 500);
    assert_int_equal(m.near_bone, 0); /* 5 mm or more from the skull */
    assert_true(m.interior > m.blood / 2); /* a blob, not lines */
    assert_true(m.edema > 0);              /* some have an edema rim */
    assert_true(m.max_count > 2 * m.min_count);
}

static void test_subarachnoid_is_thin(void **state)
{
    (void)state;
    placement m = measure(SUBARACHNOID, 6);
    assert_true(m.blood > 100);
    assert_true(m.interior < m.blood / 4); /* thin lines in sulci and cisterns */
}

/* ---- Progress and cancel --------------------------------------------------- */

typedef struct progress_log {
    int calls, cancel_after;
    int64_t last_done, total;
} progress_log;

static int on_progress(void *user, int64_t done, int64_t total, const char *what)
{
    progress_log *log = user;
    assert_string_equal(what, "phantom");
    assert_true(done >= log->last_done && done <= total);
    log->last_done = done;
    log->total = total;
    return ++log->calls > log->cancel_after;
}

static void test_progress_and_cancel(void **state)
{
    const char *dir = *state;
    char a[4096], b[4096], path[4200];
    ich_phantom_options o = small_options();
    progress_log log = {0, 1 << 30, 0, 0};
    o.progress = on_progress;
    o.progress_user = &log;
    tu_join(a, sizeof a, dir, "whole");
    assert_int_equal(ich_phantom_write(a, &o, NULL), ICH_OK);
    assert_true(log.calls >= 1);
    assert_int_equal(log.last_done, 24);
    assert_int_equal(log.total, 24);

    progress_log stop = {0, 0, 0, 0};
    o.progress_user = &stop;
    o.slices = 200;
    o.rows = o.columns = 256;
    int64_t written = -1;
    tu_join(b, sizeof b, dir, "cancelled");
    assert_int_equal(ich_phantom_write(b, &o, &written), ICH_ERR_CANCELLED);
    assert_non_null(strstr(ich_last_error(), "cancelled"));
    assert_int_equal(written, 0);
    assert_false(tu_exists(tu_join(path, sizeof path, b, "labels.csv")));
    tu_join(path, sizeof path, b, "images");
    assert_true(tu_dir_count(path, NULL, 0) < 2 * 2 * 200);
}

static void test_unwritable_folder(void **state)
{
    const char *dir = *state;
    char path[4200];
    tu_join(path, sizeof path, dir, "file");
    assert_int_equal(tu_write_file(path, "x", 1), 0);
    ich_phantom_options o = small_options();
    assert_int_equal(ich_phantom_write(path, &o, NULL), ICH_ERR_IO);
}

int main(void)
{
    TU_APPLY_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_bad_options, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_same_files_for_any_thread_count, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_tree_layout, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_csvs_match_slices_and_dicoms, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test(test_prevalence_extremes),
        cmocka_unit_test(test_tissue_hu),
        cmocka_unit_test(test_epidural_and_subdural_lie_against_the_skull),
        cmocka_unit_test(test_intraventricular_is_in_the_ventricles),
        cmocka_unit_test(test_intraparenchymal_is_inside_the_brain),
        cmocka_unit_test(test_subarachnoid_is_thin),
        cmocka_unit_test_setup_teardown(test_progress_and_cancel, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_unwritable_folder, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
