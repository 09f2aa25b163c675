/*
 * ich-split — the pipeline's "split" step.
 *
 * Splits a label CSV into training, validation and test sets (default
 * 80/10/10), seeded, so that no patient has images in two sets (a model
 * must be tested on patients it has never seen) and so that each
 * hemorrhage type keeps about the same share in every set (stratified).
 * The patient comes from the CSV's patient column or, with
 * --groups-from-dicom, from the PatientID of each DICOM file. Writes
 * OUT_DIR/train.csv, val.csv and test.csv and prints how rows, patients and
 * each label's positives are distributed over the three sets.
 *
 *   ich-split work/labels.csv work/split --ratios 0.8,0.1,0.1 --seed 7
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ich/ich.h>

static const char *const PART_FILES[3] = {"train.csv", "val.csv", "test.csv"};
static const char *const PART_NAMES[3] = {"train", "val", "test"};

typedef struct options {
    double ratios[3];
    unsigned long long seed;
    int stratify;
    const char *dicom_dir;
    int threads;
    int quiet;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-split LABELS.csv OUT_DIR [options]\n"
            "Split LABELS.csv into OUT_DIR/train.csv, val.csv and test.csv by patient.\n\n"
            "  --ratios A,B,C            train, validation, test shares, summing to 1\n"
            "                            (default 0.8,0.1,0.1)\n"
            "  --seed S                  random seed (default 0)\n"
            "  --no-stratify             balance only the row counts, not the labels\n"
            "  --groups-from-dicom DIR   read each image's patient from DIR/<id>.dcm\n"
            "  --threads N               threads reading DICOM headers (default: all cores)\n"
            "  --quiet                   no table or warnings\n"
            "  --help                    this text\n"
            "Exit status: 0 ok; 1 failed, or some DICOM files of --groups-from-dicom could\n"
            "not be read (the split is still written, those rows keep the CSV's patient);\n"
            "2 bad usage.\n");
}

static int parse_ratios(const char *text, double r[3])
{
    const char *p = text;
    double sum = 0;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        r[i] = strtod(p, &end);
        if (errno || end == p || !isfinite(r[i]) || r[i] < 0 || *end != (i < 2 ? ',' : '\0'))
            return -1;
        sum += r[i];
        p = end + 1;
    }
    return fabs(sum - 1.0) <= 1e-6 ? 0 : -1;
}

static int parse_options(int argc, char **argv, options *o, const char **csv, const char **out)
{
    static const struct option longopts[] = {
        {"ratios", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},
        {"no-stratify", no_argument, 0, 'n'},
        {"groups-from-dicom", required_argument, 0, 'g'},
        {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    *o = (options){{0.8, 0.1, 0.1}, 0, 1, NULL, 0, 0};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'r':
            if (parse_ratios(optarg, o->ratios) != 0) {
                fprintf(stderr, "ich-split: --ratios needs three numbers >= 0 summing to 1, "
                                "like 0.8,0.1,0.1, not \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 's':
            errno = 0;
            o->seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "ich-split: --seed must be a non-negative integer\n");
                return -1;
            }
            break;
        case 't':
            errno = 0;
            o->threads = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o->threads < 1 || o->threads > 1024) {
                fprintf(stderr, "ich-split: --threads must be an integer in 1..1024\n");
                return -1;
            }
            break;
        case 'n': o->stratify = 0; break;
        case 'g': o->dicom_dir = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return -1;
    }
    *csv = argv[optind];
    *out = argv[optind + 1];
    return 0;
}

static void on_log(ich_log_level level, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "ich-split: %s: %s\n", level >= ICH_LOG_ERROR ? "error" : "warning", message);
}

/* ---- The distribution table ------------------------------------------------ */

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct patients of a table; a row without a patient counts as one. */
static long long count_patients(const ich_labels *t)
{
    int64_t n = ich_labels_rows(t);
    const char **groups = malloc((size_t)(n ? n : 1) * sizeof *groups);
    if (!groups)
        return -1;
    long long count = 0;
    int64_t k = 0;
    for (int64_t r = 0; r < n; r++) {
        const char *g = ich_labels_group(t, r);
        if (g[0])
            groups[k++] = g;
        else
            count++;
    }
    qsort(groups, (size_t)k, sizeof *groups, by_string);
    for (int64_t i = 0; i < k; i++)
        count += i == 0 || strcmp(groups[i - 1], groups[i]) != 0;
    free(groups);
    return count;
}

static void print_row(const char *name, const ich_labels *t, int64_t all_rows)
{
    int32_t columns = ich_labels_columns(t);
    int64_t rows = ich_labels_rows(t), positives[ICH_LABELS_MAX_COLUMNS];
    ich_labels_positives(t, positives, columns);
    printf("%-6s %7lld %5.1f%% %8lld", name, (long long)rows,
           all_rows ? 100.0 * rows / all_rows : 0.0, count_patients(t));
    for (int32_t c = 0; c < columns; c++)
        printf("  %7lld %5.1f%%", (long long)positives[c],
               rows ? 100.0 * positives[c] / rows : 0.0);
    printf("\n");
}

/* Per part: rows (and their share of all rows), patients, and for each
 * label its positives and their share of the part's rows. */
static void print_table(const ich_labels *all, ich_labels *const parts[3])
{
    int32_t columns = ich_labels_columns(all);
    printf("%-6s %14s %8s", "part", "rows", "patients");
    for (int32_t c = 0; c < columns; c++)
        printf("  %14.14s", ich_labels_column_name(all, c));
    printf("\n");
    int64_t n = ich_labels_rows(all);
    for (int p = 0; p < 3; p++)
        print_row(PART_NAMES[p], parts[p], n);
    print_row("all", all, n);
    printf("(label columns: positives and their share of the part's rows)\n");
}

/* ---- Main ---------------------------------------------------------------------- */

static int split_and_write(ich_labels *labels, const options *o, const char *out_dir)
{
    ich_split_options so;
    ich_split_options_init(&so);
    memcpy(so.ratios, o->ratios, sizeof so.ratios);
    so.seed = o->seed;
    so.stratify = o->stratify;
    ich_labels *parts[3];
    if (ich_labels_split(labels, &so, parts) != ICH_OK) {
        fprintf(stderr, "ich-split: %s\n", ich_last_error());
        return 1;
    }
    int status = 0;
    for (int p = 0; p < 3 && status == 0; p++) {
        size_t n = strlen(out_dir) + strlen(PART_FILES[p]) + 2;
        char *path = malloc(n);
        if (path)
            snprintf(path, n, "%s/%s", out_dir, PART_FILES[p]);
        if (!path || ich_labels_write(parts[p], path) != ICH_OK) {
            fprintf(stderr, "ich-split: %s\n", path ? ich_last_error() : "out of memory");
            status = 1;
        }
        free(path);
    }
    if (status == 0 && !o->quiet) {
        printf("ich-split: %lld rows split %g/%g/%g (seed %llu, %s) into %s/{train,val,test}.csv\n",
               (long long)ich_labels_rows(labels), o->ratios[0], o->ratios[1], o->ratios[2],
               o->seed, o->stratify ? "stratified" : "not stratified", out_dir);
        print_table(labels, parts);
    }
    for (int p = 0; p < 3; p++)
        ich_labels_free(parts[p]);
    return status;
}

int main(int argc, char **argv)
{
    options o;
    const char *csv, *out_dir;
    if (parse_options(argc, argv, &o, &csv, &out_dir) != 0)
        return 2;
    if (!o.quiet)
        ich_set_log_callback(on_log, NULL, ICH_LOG_WARNING);
    ich_labels *labels = NULL;
    if (ich_labels_read(csv, &labels) != ICH_OK) {
        fprintf(stderr, "ich-split: %s\n", ich_last_error());
        return 1;
    }
    int status = 0, groups_incomplete = 0;
    if (o.dicom_dir) {
        int64_t unreadable = 0;
        if (ich_labels_groups_from_dicom(labels, o.dicom_dir, o.threads, &unreadable) != ICH_OK) {
            fprintf(stderr, "ich-split: %s\n", ich_last_error());
            status = 1;
        } else if (unreadable && !o.quiet) {
            fprintf(stderr, "ich-split: %lld of %lld DICOM files could not be read; their rows "
                            "keep the CSV's patient\n",
                    (long long)unreadable, (long long)ich_labels_rows(labels));
        }
        groups_incomplete = unreadable > 0;
    }
    if (status == 0)
        status = split_and_write(labels, &o, out_dir);
    if (status == 0 && groups_incomplete)
        status = 1; /* written, but some patients could not be confirmed */
    ich_labels_free(labels);
    return status;
}
