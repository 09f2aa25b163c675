/*
 * ich-phantom: make synthetic head-CT slices for the demo and the tests.
 *
 * It draws a simple head in Hounsfield units -- air outside, a thin scalp,
 * an elliptical skull of varying thickness, grey and white matter, two
 * lateral ventricles, scanner noise -- whose shape changes from the skull
 * base to the vertex, and writes each axial slice as a real CT DICOM file
 * with ich_dicom_write_ct(), laid out as OUTPUT_DIR/<patient>/<series>/
 * ID_<10 hex digits>.dcm like the RSNA data. Everything (pixels, names,
 * UIDs) comes from the seed, so the same seed gives the same files. A fuller
 * phantom with the five hemorrhage types and a label CSV comes later.
 *
 *   ich-phantom OUTPUT_DIR [--slices N] [--patients P] [--size N] [--seed S] [--quiet]
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ich/ich.h>

#define PI 3.14159265358979323846
#define FIELD_OF_VIEW_MM 230.0 /* 512 pixels of 0.45 mm */
#define SLICE_THICKNESS_MM 5.0
#define UID_ROOT "1.2.826.0.1.3680043.10.1234."

/* ---- Random numbers: our own, so every platform gives the same files ---- */

/* splitmix64: one step of a well-mixed 64-bit sequence. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A generator seeded from the seed and up to two indexes (patient, slice). */
static uint64_t rng_for(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t state = seed;
    state ^= splitmix64(&state) + a;
    state ^= splitmix64(&state) + b;
    splitmix64(&state);
    return state;
}

static double uniform(uint64_t *rng) /* in [0, 1) */
{
    return (double)(splitmix64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

static double uniform_in(uint64_t *rng, double lo, double hi)
{
    return lo + (hi - lo) * uniform(rng);
}

static double gaussian(uint64_t *rng) /* mean 0, sd 1 (Box-Muller) */
{
    double u = 1.0 - uniform(rng); /* in (0, 1], so log(u) is finite */
    return sqrt(-2.0 * log(u)) * cos(2.0 * PI * uniform(rng));
}

/* ---- Names and UIDs ---------------------------------------------------- */

/* A 40-bit number for "ID_<10 hex digits>" names. Every step is a bijection
 * of 40-bit numbers, so different (kind, index) pairs never share a name. */
static uint64_t id40(uint64_t seed, unsigned kind, uint64_t index)
{
    const uint64_t mask = (1ull << 40) - 1;
    uint64_t key = rng_for(seed, 0, 0); /* one key for every kind */
    uint64_t x = ((uint64_t)kind << 38 | index) & mask; /* kind 0..3, index < 2^38 */
    x = (x + key) & mask;
    for (int round = 0; round < 3; round++) {
        x ^= x >> 19;
        x = (x * 0x5DEECE66Dull) & mask; /* odd multiplier: invertible */
        x ^= x >> 23;
        x = (x + (key >> 24)) & mask;
    }
    return x;
}

enum { ID_PATIENT = 0, ID_SERIES = 1, ID_IMAGE = 2 };

static void make_id(char *out, size_t size, uint64_t seed, unsigned kind, uint64_t index)
{
    snprintf(out, size, "ID_%010" PRIx64, id40(seed, kind, index));
}

/* UIDs: root.seed.patient.kind[.slice], kind 1 study, 2 series, 3 image;
 * at most 60 characters, within the 64 that DICOM allows. */
static void make_uid(char *out, size_t size, uint64_t seed, int patient, int kind, int slice)
{
    if (slice > 0)
        snprintf(out, size, UID_ROOT "%" PRIu64 ".%d.%d.%d", seed, patient, kind, slice);
    else
        snprintf(out, size, UID_ROOT "%" PRIu64 ".%d.%d", seed, patient, kind);
}

/* ---- The head ---------------------------------------------------------- */

/* What varies from one patient to the next. */
typedef struct head {
    double half_width, half_length; /* skull ellipse semi-axes in mm */
    double angle;                   /* small tilt in the axial plane, radians */
    double center_x, center_y;      /* offset from the image centre, mm */
    double skull_mm;                /* mean skull thickness */
    double skull_phase;             /* where the skull is thicker */
    double ventricle_scale;         /* larger ventricles in older heads */
} head;

static head random_head(uint64_t seed, int patient)
{
    uint64_t rng = rng_for(seed, (uint64_t)patient, 1000003);
    head h;
    h.half_width = uniform_in(&rng, 68, 78);
    h.half_length = h.half_width * uniform_in(&rng, 1.18, 1.32);
    h.angle = uniform_in(&rng, -0.12, 0.12);
    h.center_x = uniform_in(&rng, -6, 6);
    h.center_y = uniform_in(&rng, -6, 6);
    h.skull_mm = uniform_in(&rng, 5, 8);
    h.skull_phase = uniform_in(&rng, 0, 2 * PI);
    h.ventricle_scale = uniform_in(&rng, 0.8, 1.4);
    return h;
}

/* HU at (x, y) mm from the head's centre, on a slice at height t in (0, 1)
 * from the skull base (0) to the vertex (1). */
static double head_hu(const head *h, double t, double x, double y)
{
    /* The head is widest a little below the middle and shrinks to the top. */
    double scale = 0.55 + 0.45 * sin(PI * (0.15 + 0.8 * t));
    double a = h->half_width * scale, b = h->half_length * scale;

    /* Distance inward from the outer skull surface along the ray from the
     * centre (an approximation that is good enough for a phantom). */
    double r = hypot(x, y), theta = atan2(y, x);
    double edge = a * b / hypot(b * cos(theta), a * sin(theta));
    double depth = edge - r;

    double skull = h->skull_mm * (1.0 + 0.3 * sin(2 * theta + h->skull_phase) +
                                  0.15 * cos(3 * theta));
    if (depth < -3.0)
        return -1000.0; /* air */
    if (depth < 0.0)
        return 40.0; /* scalp */
    if (depth < skull) {
        /* Dense outer and inner tables, spongier diploe between them. */
        double u = fabs(2.0 * depth / skull - 1.0);
        return 800.0 + 1050.0 * u * u;
    }
    double inside = depth - skull;
    if (inside < 1.5)
        return 8.0; /* a thin layer of CSF under the skull */

    /* Lateral ventricles, largest mid-head: two curved bands, close to the
     * midline in the middle and spreading apart at both ends, ")(". */
    double v = h->ventricle_scale * exp(-pow((t - 0.5) / 0.15, 2));
    double along = (y + 4.0) / (26.0 * v + 1e-9); /* -1 front .. 1 back */
    if (v > 0.15 && fabs(along) < 1.0) {
        double inner = 2.0 + 12.0 * along * along * v;
        double half = 4.5 * v * sqrt(1.0 - along * along);
        if (fabs(fabs(x) - inner - half) < half)
            return 6.0;
    }

    /* Grey matter (about 38 HU) in a wavy cortical band, white matter
     * (about 27 HU) deeper, blended smoothly between them. */
    double cortex = 5.0 + 2.5 * sin(13 * theta + 4 * t) + 1.5 * sin(29 * theta + 2);
    double grey = 1.0 / (1.0 + exp((inside - cortex) / 0.8));
    return 27.0 + 11.0 * grey;
}

/* Draw slice `index` of `count` into `pixels` as stored values
 * (HU = stored - 1024). */
static void draw_slice(const head *h, uint64_t seed, int patient, int index, int count,
                       int size, int16_t *pixels)
{
    uint64_t rng = rng_for(seed, (uint64_t)patient, (uint64_t)index + 1);
    double t = (index + 0.5) / count;
    double mm = FIELD_OF_VIEW_MM / size;
    double c = cos(h->angle), s = sin(h->angle);

    for (int row = 0; row < size; row++) {
        for (int col = 0; col < size; col++) {
            /* Pixel centre in mm, relative to the head's centre and tilt. */
            double px = (col + 0.5) * mm - FIELD_OF_VIEW_MM / 2 - h->center_x;
            double py = (row + 0.5) * mm - FIELD_OF_VIEW_MM / 2 - h->center_y;
            double hu = head_hu(h, t, c * px + s * py, -s * px + c * py);
            hu += 4.0 * gaussian(&rng); /* scanner noise, sd 4 HU */
            double stored = floor(hu + 1024.0 + 0.5);
            if (stored < -32768) stored = -32768;
            if (stored > 32767) stored = 32767;
            pixels[(size_t)row * size + col] = (int16_t)stored;
        }
    }
}

/* ---- Command line ------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-phantom OUTPUT_DIR [options]\n"
            "Write synthetic head-CT slices as DICOM files:\n"
            "OUTPUT_DIR/ID_<patient>/ID_<series>/ID_<image>.dcm\n"
            "\n"
            "  --slices N     slices per patient, 1..1000 (default 8)\n"
            "  --patients P   number of patients, 1..10000 (default 1)\n"
            "  --size N       rows and columns, 16..4096 (default 512)\n"
            "  --seed S       random seed, 0..2^64-1 (default 1); the same seed\n"
            "                 gives the same files\n"
            "  --quiet        no progress output\n"
            "  --help         show this help\n");
}

/* Parse a whole decimal number in [lo, hi]; 0 on success. */
static int parse_number(const char *option, const char *text, uint64_t lo, uint64_t hi,
                        uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text ? text : "", &end, 10);
    if (!text || !*text || *end || text[0] == '-' || errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "ich-phantom: %s needs a whole number from %" PRIu64 " to %" PRIu64
                        ", got '%s'\n", option, lo, hi, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

/* mkdir -p: the folder and any missing parents; 0 on success. */
static int make_dir(const char *path)
{
    char partial[4096];
    size_t n = strlen(path);
    if (n >= sizeof partial) {
        fprintf(stderr, "ich-phantom: path too long: %s\n", path);
        return -1;
    }
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        memcpy(partial, path, i);
        partial[i] = '\0';
        if (mkdir(partial, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "ich-phantom: cannot create %s: %s\n", partial, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *out_dir = NULL;
    uint64_t slices = 8, patients = 1, size = 512, seed = 1;
    int quiet = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "--quiet")) {
            quiet = 1;
            continue;
        } else if (!strcmp(arg, "--slices")) {
            bad = parse_number(arg, value, 1, 1000, &slices);
        } else if (!strcmp(arg, "--patients")) {
            bad = parse_number(arg, value, 1, 10000, &patients);
        } else if (!strcmp(arg, "--size")) {
            bad = parse_number(arg, value, 16, 4096, &size);
        } else if (!strcmp(arg, "--seed")) {
            bad = parse_number(arg, value, 0, UINT64_MAX, &seed);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "ich-phantom: unknown option '%s' (try --help)\n", arg);
            return 1;
        } else if (!out_dir) {
            out_dir = arg;
            continue;
        } else {
            fprintf(stderr, "ich-phantom: one OUTPUT_DIR only, got '%s' too\n", arg);
            return 1;
        }
        if (bad)
            return 1;
        i++; /* the option's value */
    }
    if (!out_dir) {
        usage(stderr);
        return 1;
    }
    if (make_dir(out_dir))
        return 1;

    int n = (int)size;
    int16_t *pixels = malloc((size_t)n * n * sizeof *pixels);
    if (!pixels) {
        fprintf(stderr, "ich-phantom: out of memory\n");
        return 1;
    }

    int status = 0;
    for (int p = 0; p < (int)patients && status == 0; p++) {
        char patient_id[16], series_id[16], image_id[16];
        char study_uid[65], series_uid[65], sop_uid[65];
        char dir[4096], path[4200];
        head h = random_head(seed, p);

        make_id(patient_id, sizeof patient_id, seed, ID_PATIENT, (uint64_t)p);
        make_id(series_id, sizeof series_id, seed, ID_SERIES, (uint64_t)p);
        make_uid(study_uid, sizeof study_uid, seed, p + 1, 1, 0);
        make_uid(series_uid, sizeof series_uid, seed, p + 1, 2, 0);

        snprintf(dir, sizeof dir, "%s/%s", out_dir, patient_id);
        if (make_dir(dir)) {
            status = 1;
            break;
        }
        snprintf(dir, sizeof dir, "%s/%s/%s", out_dir, patient_id, series_id);
        if (make_dir(dir)) {
            status = 1;
            break;
        }

        for (int k = 0; k < (int)slices; k++) {
            draw_slice(&h, seed, p, k, (int)slices, n, pixels);
            make_id(image_id, sizeof image_id, seed, ID_IMAGE, (uint64_t)p * 1000 + k);
            make_uid(sop_uid, sizeof sop_uid, seed, p + 1, 3, k + 1);
            snprintf(path, sizeof path, "%s/%s.dcm", dir, image_id);

            ich_ct_slice slice = {0};
            slice.size = sizeof slice;
            slice.rows = n;
            slice.columns = n;
            slice.pixels = pixels;
            slice.rescale_slope = 1.0;
            slice.rescale_intercept = -1024.0;
            slice.pixel_spacing[0] = slice.pixel_spacing[1] = FIELD_OF_VIEW_MM / n;
            slice.slice_thickness = SLICE_THICKNESS_MM;
            slice.image_position[0] = -FIELD_OF_VIEW_MM / 2;
            slice.image_position[1] = -FIELD_OF_VIEW_MM / 2;
            slice.image_position[2] = k * SLICE_THICKNESS_MM;
            slice.instance_number = k + 1;
            slice.window_center = 40; /* the brain window */
            slice.window_width = 80;
            slice.patient_id = patient_id;
            slice.study_instance_uid = study_uid;
            slice.series_instance_uid = series_uid;
            slice.sop_instance_uid = sop_uid;
            if (ich_dicom_write_ct(path, &slice) != ICH_OK) {
                fprintf(stderr, "ich-phantom: %s\n", ich_last_error());
                status = 1;
                break;
            }
        }
        if (status == 0 && !quiet)
            printf("patient %d/%d %s: %d slices of %dx%d in %s\n", p + 1, (int)patients,
                   patient_id, (int)slices, n, n, dir);
    }
    free(pixels);
    return status;
}
