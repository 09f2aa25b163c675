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
    assert_int_equal(o.vary_intercept, 0);
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
    /* Below the first version's size (the struct has grown since). */
    BAD(size, offsetof(ich_phantom_options, progress_user) + sizeof(void *) - 1);
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
    BAD(vary_intercept, 2);
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

/* ---- Tissues, measured against the generator's own tissue map ------------- */

/* The ranges <ich/phantom.h> documents for each ich_phantom_tissue, as
 * drawn (before noise and the kernel). */
static const double TISSUE_RANGE[ICH_PHANTOM_TISSUE_COUNT][2] = {
    [ICH_PHANTOM_AIR] = {-1000, -1000},     [ICH_PHANTOM_SOFT_TISSUE] = {10, 45},
    [ICH_PHANTOM_FAT] = {-110, -75},        [ICH_PHANTOM_BONE] = {250, 1950},
    [ICH_PHANTOM_CSF] = {3, 20},            [ICH_PHANTOM_GREY] = {28, 43},
    [ICH_PHANTOM_WHITE] = {22, 37},         [ICH_PHANTOM_DURA] = {43, 51},
    [ICH_PHANTOM_CALCIFICATION] = {100, 400}, [ICH_PHANTOM_EDEMA] = {10, 30},
    [ICH_PHANTOM_HEADREST] = {-820, 90},    [ICH_PHANTOM_SINUS_AIR] = {-980, -940},
    [ICH_PHANTOM_EPIDURAL] = {36, 87},      [ICH_PHANTOM_INTRAPARENCHYMAL] = {36, 87},
    [ICH_PHANTOM_INTRAVENTRICULAR] = {36, 87}, [ICH_PHANTOM_SUBARACHNOID] = {36, 87},
    [ICH_PHANTOM_SUBDURAL] = {36, 87},
};

/* Is pixel i inside a 5x5 block of one tissue (the softest kernel, two
 * passes of [1 2 1], cannot have mixed another tissue into it)? */
static int interior(const uint8_t *t, int n, int i)
{
    int r = i / n, c = i % n;
    if (r < 2 || c < 2 || r >= n - 2 || c >= n - 2)
        return 0;
    for (int dr = -2; dr <= 2; dr++)
        for (int dc = -2; dc <= 2; dc++)
            if (t[(r + dr) * n + c + dc] != t[i])
                return 0;
    return 1;
}

typedef struct tissue_stats {
    long seen[ICH_PHANTOM_TISSUE_COUNT]; /* every interior pixel */
    long count[ICH_PHANTOM_TISSUE_COUNT];
    double sum[ICH_PHANTOM_TISSUE_COUNT];
} tissue_stats;

/* Every interior pixel of each tissue in its documented range (1 HU of
 * slack for the stored integers), and the sums for the means; only the
 * counts at the skull base (t < 0.3), where beam hardening changes HU. */
static void check_tissues(const float *hu, const uint8_t *t, int n, int base, tissue_stats *s)
{
    for (int i = 0; i < n * n; i++) {
        assert_true(t[i] < ICH_PHANTOM_TISSUE_COUNT);
        if (!interior(t, n, i))
            continue;
        s->seen[t[i]]++;
        if (base)
            continue;
        const double *range = TISSUE_RANGE[t[i]];
        /* Cupping (beam hardening) adds up to 4 HU inside the skull. */
        double cup = t[i] >= ICH_PHANTOM_CSF && t[i] != ICH_PHANTOM_HEADREST &&
                             t[i] != ICH_PHANTOM_SINUS_AIR ? 4 : 0;
        if (t[i] == ICH_PHANTOM_AIR && (hu[i] == -3024 || hu[i] == -2000))
            continue; /* padding outside the reconstruction circle */
        if (hu[i] < range[0] - 1 || hu[i] > range[1] + 1 + cup)
            fail_msg("tissue %d at pixel %d: %g HU outside %g..%g", t[i], i, hu[i], range[0],
                     range[1]);
        s->count[t[i]]++;
        s->sum[t[i]] += hu[i];
    }
}

static void test_tissue_hu(void **state)
{
    (void)state;
    ich_phantom_options o = small_options();
    o.patients = 6;
    o.slices = 24;
    o.rows = o.columns = 256;
    o.prevalence = 0.7;
    o.noise = 0;
    size_t n = 256 * 256;
    float *hu = malloc(n * sizeof *hu);
    uint8_t *t = malloc(n);
    tissue_stats s;
    memset(&s, 0, sizeof s);
    int pads[3] = {0};
    for (int p = 0; p < o.patients; p++) {
        for (int k = 1; k < o.slices; k += 2) {
            assert_int_equal(ich_phantom_slice(&o, p, 0, k, hu, n, NULL, NULL, 0), ICH_OK);
            assert_int_equal(ich_phantom_tissues(&o, p, 0, k, t, n), ICH_OK);
            check_tissues(hu, t, 256, (k + 0.5) / o.slices < 0.3, &s);
            /* Air in the corners, or the padding value outside the
             * reconstruction circle some scanners write. */
            assert_true(hu[0] == -1000 || hu[0] == -3024 || hu[0] == -2000);
            assert_true(hu[255] == hu[0] && hu[n - 1] == hu[0]);
            pads[hu[0] == -1000 ? 0 : hu[0] == -3024 ? 1 : 2]++;
            assert_true(t[0] == ICH_PHANTOM_AIR && t[n - 1] == ICH_PHANTOM_AIR);
        }
    }
    /* The head's tissues all occur, the skull base's too. */
    const int seen[] = {ICH_PHANTOM_SOFT_TISSUE, ICH_PHANTOM_FAT, ICH_PHANTOM_BONE,
                        ICH_PHANTOM_CSF, ICH_PHANTOM_GREY, ICH_PHANTOM_WHITE,
                        ICH_PHANTOM_SINUS_AIR, ICH_PHANTOM_HEADREST};
    for (size_t k = 0; k < sizeof seen / sizeof *seen; k++)
        assert_true(s.seen[seen[k]] > 20);
    assert_true(pads[0] > 0 && pads[1] + pads[2] > 0); /* both occur */
    /* Grey matter is denser than white matter, both than CSF; blood is
     * denser than brain. */
    double grey = s.sum[ICH_PHANTOM_GREY] / s.count[ICH_PHANTOM_GREY];
    double white = s.sum[ICH_PHANTOM_WHITE] / s.count[ICH_PHANTOM_WHITE];
    double csf = s.sum[ICH_PHANTOM_CSF] / s.count[ICH_PHANTOM_CSF];
    assert_true(grey > white + 4 && white > csf + 12);
    print_message("mean HU: grey %.1f, white %.1f, CSF %.1f\n", grey, white, csf);
    assert_true(grey >= 30 && grey <= 43 && white >= 24 && white <= 35);

    /* Slices vary along z: the head is smaller near the vertex. */
    ich_phantom_options d = o;
    long low = 0, high = 0;
    assert_int_equal(ich_phantom_slice(&d, 0, 0, 8, hu, n, NULL, NULL, 0), ICH_OK);
    for (size_t i = 0; i < n; i++)
        low += hu[i] > -500;
    assert_int_equal(ich_phantom_slice(&d, 0, 0, 22, hu, n, NULL, NULL, 0), ICH_OK);
    for (size_t i = 0; i < n; i++)
        high += hu[i] > -500;
    assert_true(high < 0.8 * low);
    free(hu);
    free(t);
}

static void test_skull_thickness_varies(void **state)
{
    (void)state;
    ich_phantom_options o = small_options();
    o.patients = 4;
    o.slices = 24;
    o.rows = o.columns = 256;
    o.prevalence = 0;
    size_t n = 256 * 256;
    uint8_t *t = malloc(n);
    for (int p = 0; p < o.patients; p++) {
        assert_int_equal(ich_phantom_tissues(&o, p, 0, 14, t, n), ICH_OK);
        /* Bone run length on rays from the image centre. */
        int shortest = 1 << 30, longest = 0;
        for (int ray = 0; ray < 16; ray++) {
            double a = ray * 3.14159265 / 8;
            int run = 0;
            for (double d = 0; d < 128; d += 0.25) {
                int c = (int)(127.5 + d * cos(a)), r = (int)(127.5 + d * sin(a));
                if (c < 0 || r < 0 || c > 255 || r > 255)
                    break;
                run += t[r * 256 + c] == ICH_PHANTOM_BONE;
            }
            shortest = run < shortest ? run : shortest;
            longest = run > longest ? run : longest;
        }
        assert_true(shortest > 0);
        assert_true(longest > 1.2 * shortest);
    }
    free(t);
}

/* Noise: sd and lag-1 autocorrelation of (noisy - clean) over the pixels
 * that are interior brain. */
static void noise_stats(const float *a, const float *b, const uint8_t *t, int n, double *sd,
                        double *lag1)
{
    double s1 = 0, s2 = 0, sx = 0;
    long m = 0, mx = 0;
    for (int i = 0; i < n * n - 1; i++) {
        if ((t[i] != ICH_PHANTOM_WHITE && t[i] != ICH_PHANTOM_GREY) || !interior(t, n, i))
            continue;
        double e = a[i] - b[i];
        s1 += e;
        s2 += e * e;
        m++;
        if (t[i + 1] == t[i] && interior(t, n, i + 1)) {
            sx += e * (a[i + 1] - b[i + 1]);
            mx++;
        }
    }
    double mean = s1 / m, var = s2 / m - mean * mean;
    *sd = sqrt(var);
    *lag1 = (sx / mx - mean * mean) / var;
}

static void test_noise_is_ct_like(void **state)
{
    (void)state;
    ich_phantom_options o = small_options(), clean;
    o.patients = 8;
    o.slices = 24;
    o.rows = o.columns = 512;
    o.prevalence = 0;
    clean = o;
    clean.noise = 0;
    size_t n = 512 * 512;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    uint8_t *t = malloc(n);
    double lowest = 1e9, highest = 0;
    for (int p = 0; p < o.patients; p++) {
        assert_int_equal(ich_phantom_slice(&o, p, 0, 14, a, n, NULL, NULL, 0), ICH_OK);
        assert_int_equal(ich_phantom_slice(&clean, p, 0, 14, b, n, NULL, NULL, 0), ICH_OK);
        assert_int_equal(ich_phantom_tissues(&o, p, 0, 14, t, n), ICH_OK);
        double sd, lag1;
        noise_stats(a, b, t, 512, &sd, &lag1);
        assert_true(sd >= 3 && sd <= 8);    /* 3-8 HU, as scanners give */
        assert_true(lag1 > 0.3 && lag1 < 0.9); /* correlated, not white */
        lowest = sd < lowest ? sd : lowest;
        highest = sd > highest ? sd : highest;
    }
    assert_true(highest > 1.2 * lowest); /* the level varies by study */
    /* noise 0: exact values, no noise (air or padding in the corner). */
    assert_true(b[0] == -1000 || b[0] == -3024 || b[0] == -2000);
    free(a);
    free(b);
    free(t);
}

/* ---- Where the blood goes ---------------------------------------------------- */

#define N 256
#define PIXEL_MM (230.0 / N)

/* Is there bone within `radius` pixels of (r, c) in tissue map t? */
static int bone_near(const uint8_t *t, int r, int c, int radius)
{
    for (int dr = -radius; dr <= radius; dr++)
        for (int dc = -radius; dc <= radius; dc++) {
            int rr = r + dr, cc = c + dc;
            if (dr * dr + dc * dc > radius * radius || rr < 0 || cc < 0 || rr >= N || cc >= N)
                continue;
            if (t[rr * N + cc] == ICH_PHANTOM_BONE)
                return 1;
        }
    return 0;
}

typedef struct placement {
    long blood, edema, touching_bone, near_bone, interior, acute, interior_blood;
    int slices_positive;
    long min_count, max_count;
    double max_center_mm;
} placement;

static int min_pixels(double mm)
{
    int n = (int)ceil(3.0 / (mm * mm));
    return n < 3 ? 3 : n;
}

/* Draw every slice of `patients` patients with one type (prevalence 1),
 * read where the blood is from the tissue map, and sum it up; the tissue
 * under the blood comes from the same patient without the bleed. */
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
    float *a = malloc(N * N * sizeof *a);
    uint8_t *ta = malloc(N * N), *tb = malloc(N * N);
    placement m = {0};
    int code = ICH_PHANTOM_EPIDURAL + type;
    for (int p = 0; p < patients; p++) {
        long series_min = 1L << 40, series_max = 0;
        int positive = 0, first = -1, last = -1;
        for (int k = 0; k < with.slices; k++) {
            float la[6];
            assert_int_equal(ich_phantom_slice(&with, p, 0, k, a, N * N, la, NULL, 0), ICH_OK);
            assert_int_equal(ich_phantom_tissues(&with, p, 0, k, ta, N * N), ICH_OK);
            assert_int_equal(ich_phantom_tissues(&without, p, 0, k, tb, N * N), ICH_OK);
            long count = 0;
            for (int i = 0; i < N * N; i++) {
                int r = i / N, c = i % N;
                if (ta[i] == ICH_PHANTOM_EDEMA) {
                    assert_int_equal(type, PARENCHYMAL);
                    m.edema++;
                    continue;
                }
                if (ta[i] < ICH_PHANTOM_EPIDURAL)
                    continue;
                assert_int_equal(ta[i], code); /* only the type drawn */
                /* Over CSF, brain or dura, never bone or air. */
                assert_true(tb[i] == ICH_PHANTOM_CSF || tb[i] == ICH_PHANTOM_GREY ||
                            tb[i] == ICH_PHANTOM_WHITE || tb[i] == ICH_PHANTOM_DURA);
                count++;
                m.touching_bone += bone_near(tb, r, c, 1);
                m.near_bone += bone_near(tb, r, c, (int)(5.0 / PIXEL_MM));
                if (type == VENTRICULAR || type == SUBARACHNOID)
                    assert_true(tb[i] == ICH_PHANTOM_CSF);
                if (interior(ta, N, i)) {
                    m.interior++;
                    if ((k + 0.5) / with.slices < 0.3)
                        continue; /* beam hardening at the skull base */
                    /* Lesion voxels: acute blood 50-90 HU, older 36-52. */
                    if (a[i] < 35 || a[i] > 90)
                        fail_msg("type %d patient %d slice %d: blood at %g HU", type, p, k, a[i]);
                    m.interior_blood++;
                    m.acute += a[i] >= 50;
                }
                double d = hypot((c - N / 2 + 0.5) * PIXEL_MM, (r - N / 2 + 0.5) * PIXEL_MM);
                if (d > m.max_center_mm)
                    m.max_center_mm = d;
            }
            m.blood += count;
            /* Labels are what is drawn; no other type is set. */
            for (int c = 1; c < 6; c++)
                if (c != type + 1)
                    assert_true(la[c] == 0);
            assert_true(la[0] == la[type + 1]);
            assert_true(la[type + 1] == (count >= min_pixels(PIXEL_MM)));
            if (la[type + 1] == 1) {
                positive++;
                if (first < 0)
                    first = k;
                last = k;
                series_min = count < series_min ? count : series_min;
                series_max = count > series_max ? count : series_max;
            }
        }
        /* A 3D lesion: positive on neighbouring slices, without gaps. */
        assert_true(positive >= 2);
        assert_int_equal(last - first + 1, positive);
        m.slices_positive += positive;
        if (series_max > m.max_count)
            m.max_count = series_max;
        if (m.min_count == 0 || series_min < m.min_count)
            m.min_count = series_min;
    }
    free(a);
    free(ta);
    free(tb);
    /* Most of the blood is acute (50-90 HU). */
    assert_true(m.acute >= m.interior_blood * 3 / 4);
    return m;
}

static void test_epidural_and_subdural_lie_against_the_skull(void **state)
{
    (void)state;
    for (int type = EPIDURAL; type <= SUBDURAL; type += SUBDURAL - EPIDURAL) {
        placement m = measure(type, 6);
        assert_true(m.blood > 500);
        assert_true(m.touching_bone > m.blood / 20); /* on the inner table */
        assert_true(m.near_bone > m.blood / 2);      /* a layer along the skull */
        assert_true(m.max_count > 3 * m.min_count);  /* size changes along z */
    }
}

static void test_intraventricular_is_in_the_ventricles(void **state)
{
    (void)state;
    placement m = measure(VENTRICULAR, 6);
    assert_true(m.blood > 100);
    assert_int_equal(m.near_bone, 0);
    assert_true(m.max_center_mm < 50); /* the ventricles are central */
}

static void test_intraparenchymal_is_inside_the_brain(void **state)
{
    (void)state;
    placement m = measure(PARENCHYMAL, 12);
    assert_true(m.blood > 500);
    assert_int_equal(m.near_bone, 0); /* 5 mm or more from the skull */
    assert_true(m.interior > m.blood / 2); /* a blob, not lines */
    assert_true(m.edema > 0);              /* some have an oedema rim */
    assert_true(m.max_count > 2 * m.min_count);
}

static void test_subarachnoid_is_thin(void **state)
{
    (void)state;
    placement m = measure(SUBARACHNOID, 8);
    assert_true(m.blood > 100);
    assert_true(m.interior < m.blood / 4); /* thin lines in sulci and cisterns */
}

/* A large bleed pushes the midline: the falx moves away from it. */
static void test_mass_effect_shifts_the_midline(void **state)
{
    (void)state;
    ich_phantom_options with = small_options(), without;
    with.patients = 12;
    with.studies_per_patient = 1;
    with.slices = 24;
    with.rows = with.columns = N;
    with.prevalence = 1;
    with.size_min = with.size_max = 1.3; /* large */
    with.type_weights[SUBDURAL] = 1;
    without = with;
    without.prevalence = 0;
    uint8_t *ta = malloc(N * N), *tb = malloc(N * N);
    int shifted = 0;
    for (int p = 0; p < with.patients; p++) {
        double most = 0;
        for (int k = 10; k < 18; k++) {
            assert_int_equal(ich_phantom_tissues(&with, p, 0, k, ta, N * N), ICH_OK);
            assert_int_equal(ich_phantom_tissues(&without, p, 0, k, tb, N * N), ICH_OK);
            double xa = 0, xb = 0;
            long na = 0, nb = 0;
            for (int i = 0; i < N * N; i++) {
                if (ta[i] == ICH_PHANTOM_DURA)
                    xa += i % N, na++;
                if (tb[i] == ICH_PHANTOM_DURA)
                    xb += i % N, nb++;
            }
            if (na > 10 && nb > 10) {
                double d = fabs(xa / na - xb / nb) * PIXEL_MM;
                most = d > most ? d : most;
            }
        }
        shifted += most > 2; /* millimetres */
    }
    assert_true(shifted >= with.patients / 2);
    free(ta);
    free(tb);
}

/* With the defaults about 14% of slices are positive for "any" (RSNA's
 * share), over many patients. */
static void test_any_prevalence_near_rsna(void **state)
{
    (void)state;
    ich_phantom_options o;
    ich_phantom_options_init(&o);
    o.patients = 150;
    o.rows = o.columns = 256;
    o.threads = 1;
    float *hu = malloc(N * N * sizeof *hu);
    long any = 0, all = 0;
    for (int p = 0; p < o.patients; p++)
        for (int k = 0; k < o.slices; k++) {
            float labels[6];
            assert_int_equal(ich_phantom_slice(&o, p, 0, k, hu, N * N, labels, NULL, 0), ICH_OK);
            any += labels[0] != 0;
            all++;
        }
    double share = (double)any / all;
    assert_true(share > 0.10 && share < 0.18);
    free(hu);
}

/* Lesions from a few millimetres (the hard cases) to several centimetres:
 * the largest cross-section of each intraparenchymal bleed, as the
 * diameter of a disc of its area, over 40 patients with the default sizes. */
static void test_lesion_sizes_reach_a_few_millimetres(void **state)
{
    (void)state;
    ich_phantom_options o;
    ich_phantom_options_init(&o);
    o.patients = 40;
    o.rows = o.columns = N;
    o.prevalence = 1;
    o.multiple = 0;
    o.type_weights[PARENCHYMAL] = 1;
    o.threads = 1;
    uint8_t *t = malloc(N * N);
    double smallest = 1e9, largest = 0;
    int small = 0;
    for (int p = 0; p < o.patients; p++) {
        long most = 0;
        for (int k = 0; k < o.slices; k++) {
            assert_int_equal(ich_phantom_tissues(&o, p, 0, k, t, N * N), ICH_OK);
            long count = 0;
            for (int i = 0; i < N * N; i++)
                count += t[i] == ICH_PHANTOM_INTRAPARENCHYMAL;
            most = count > most ? count : most;
        }
        if (most == 0)
            continue;
        double diameter = 2 * sqrt(most * PIXEL_MM * PIXEL_MM / 3.14159265358979);
        smallest = diameter < smallest ? diameter : smallest;
        largest = diameter > largest ? diameter : largest;
        small += diameter <= 6;
    }
    print_message("intraparenchymal diameters %.1f..%.1f mm, %d of %d <= 6 mm\n", smallest,
                  largest, small, (int)o.patients);
    assert_true(smallest <= 5.0);  /* a few millimetres */
    assert_true(largest >= 30.0);  /* and large ones */
    assert_true(small >= 4);       /* the small ones are not rare */
    free(t);
}

/* The lowest slices are the skull base: bone, air in the sinuses and
 * mastoids, orbital fat and brain (temporal lobes, brainstem, cerebellum),
 * each in a plausible share of the head; higher up, mostly brain. */
static void test_skull_base_levels(void **state)
{
    (void)state;
    ich_phantom_options o = small_options();
    o.patients = 8;
    o.studies_per_patient = 1;
    o.slices = 24;
    o.rows = o.columns = N;
    o.prevalence = 0;
    uint8_t *t = malloc(N * N);
    for (int p = 0; p < o.patients; p++) {
        for (int k = 2; k <= 12; k += 10) {
            assert_int_equal(ich_phantom_tissues(&o, p, 0, k, t, N * N), ICH_OK);
            long head = 0, bone = 0, sinus = 0, brain = 0, fat = 0, cistern = 0;
            for (int i = 0; i < N * N; i++) {
                if (t[i] == ICH_PHANTOM_AIR || t[i] == ICH_PHANTOM_HEADREST)
                    continue;
                head++;
                bone += t[i] == ICH_PHANTOM_BONE;
                sinus += t[i] == ICH_PHANTOM_SINUS_AIR;
                fat += t[i] == ICH_PHANTOM_FAT;
                brain += t[i] == ICH_PHANTOM_GREY || t[i] == ICH_PHANTOM_WHITE;
                cistern += t[i] == ICH_PHANTOM_CSF;
            }
            double fb = (double)bone / head, fs = (double)sinus / head;
            double fbr = (double)brain / head, ff = (double)fat / head;
            if (k == 2) {
                if (!(fb > 0.15 && fb < 0.6 && fs > 0.005 && fs < 0.15 && fbr > 0.2 &&
                      fbr < 0.8 && ff > 0.02 && cistern > 0))
                    fail_msg("patient %d skull base: bone %.3f, sinus %.3f, brain %.3f, fat "
                             "%.3f", p, fb, fs, fbr, ff);
            } else {
                if (!(fb < 0.25 && fs == 0 && fbr > 0.5))
                    fail_msg("patient %d slice %d: bone %.3f, sinus %.3f, brain %.3f", p, k, fb,
                             fs, fbr);
            }
        }
    }
    free(t);
}

/* No label leak: a bleed changes the pixels where it is and what its mass
 * effect moves, nothing else (not the noise, the head's size or position,
 * the kernel or the padding). Every pixel farther than the kernel's reach
 * from a change of tissue is the same with and without the bleeds. */
static void test_bleeds_change_nothing_else(void **state)
{
    (void)state;
    ich_phantom_options with = small_options(), without;
    with.patients = 6;
    with.studies_per_patient = 1;
    with.slices = 24;
    with.rows = with.columns = N;
    with.prevalence = 1;
    without = with;
    without.prevalence = 0;
    float *a = malloc(N * N * sizeof *a), *b = malloc(N * N * sizeof *b);
    uint8_t *ta = malloc(N * N), *tb = malloc(N * N);
    long changed_tissue = 0, compared = 0;
    for (int p = 0; p < with.patients; p++) {
        for (int k = 6; k < 20; k += 3) {
            assert_int_equal(ich_phantom_slice(&with, p, 0, k, a, N * N, NULL, NULL, 0), ICH_OK);
            assert_int_equal(ich_phantom_slice(&without, p, 0, k, b, N * N, NULL, NULL, 0),
                             ICH_OK);
            assert_int_equal(ich_phantom_tissues(&with, p, 0, k, ta, N * N), ICH_OK);
            assert_int_equal(ich_phantom_tissues(&without, p, 0, k, tb, N * N), ICH_OK);
            for (int i = 0; i < N * N; i++) {
                int r = i / N, c = i % N, near = 0;
                for (int dr = -2; dr <= 2 && !near; dr++)
                    for (int dc = -2; dc <= 2 && !near; dc++) {
                        int rr = r + dr, cc = c + dc;
                        if (rr >= 0 && cc >= 0 && rr < N && cc < N)
                            near = ta[rr * N + cc] != tb[rr * N + cc];
                    }
                changed_tissue += ta[i] != tb[i];
                if (near)
                    continue;
                compared++;
                if (a[i] != b[i])
                    fail_msg("patient %d slice %d pixel %d: %g HU with bleeds, %g without", p,
                             k, i, a[i], b[i]);
            }
        }
    }
    assert_true(changed_tissue > 100 && compared > changed_tissue);
    free(a);
    free(b);
    free(ta);
    free(tb);
}

/* Scanners differ: the kernel (noise grain: lag-1 autocorrelation of the
 * noise) varies between studies, from sharp to soft. */
static void test_kernels_vary_by_study(void **state)
{
    (void)state;
    ich_phantom_options o = small_options(), clean;
    o.patients = 1;
    o.studies_per_patient = 24;
    o.slices = 24;
    o.rows = o.columns = N;
    o.prevalence = 0;
    clean = o;
    clean.noise = 0;
    float *a = malloc(N * N * sizeof *a), *b = malloc(N * N * sizeof *b);
    uint8_t *t = malloc(N * N);
    double lowest = 1, highest = 0;
    for (int s = 0; s < o.studies_per_patient; s++) {
        assert_int_equal(ich_phantom_slice(&o, 0, s, 14, a, N * N, NULL, NULL, 0), ICH_OK);
        assert_int_equal(ich_phantom_slice(&clean, 0, s, 14, b, N * N, NULL, NULL, 0), ICH_OK);
        assert_int_equal(ich_phantom_tissues(&o, 0, s, 14, t, N * N), ICH_OK);
        double sd, lag1;
        noise_stats(a, b, t, N, &sd, &lag1);
        lowest = lag1 < lowest ? lag1 : lowest;
        highest = lag1 > highest ? lag1 : highest;
    }
    print_message("noise lag-1 autocorrelation %.2f..%.2f over studies\n", lowest, highest);
    assert_true(lowest < 0.45);  /* a sharp kernel: [1 6 1] gives 0.32 */
    assert_true(highest > 0.75); /* a soft one: [1 4 6 4 1] gives 0.80 */
    free(a);
    free(b);
    free(t);
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
        cmocka_unit_test(test_skull_thickness_varies),
        cmocka_unit_test(test_noise_is_ct_like),
        cmocka_unit_test(test_mass_effect_shifts_the_midline),
        cmocka_unit_test(test_any_prevalence_near_rsna),
        cmocka_unit_test(test_epidural_and_subdural_lie_against_the_skull),
        cmocka_unit_test(test_intraventricular_is_in_the_ventricles),
        cmocka_unit_test(test_intraparenchymal_is_inside_the_brain),
        cmocka_unit_test(test_subarachnoid_is_thin),
        cmocka_unit_test(test_lesion_sizes_reach_a_few_millimetres),
        cmocka_unit_test(test_skull_base_levels),
        cmocka_unit_test(test_bleeds_change_nothing_else),
        cmocka_unit_test(test_kernels_vary_by_study),
        cmocka_unit_test_setup_teardown(test_progress_and_cancel, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_unwritable_folder, tu_setup_tmpdir,
                                        tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
