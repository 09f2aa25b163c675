/* Scan-level labels to slice level (the tutorial's first data step): the
 * labels come one row per scan, the network sees one slice at a time, so
 * every slice file of a scan's folder gets the scan's labels. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/paths.h"
#include "core/csv.h"
#include "data/labels_internal.h"
#include "ich/labels.h"

static const char *const patient_names[] = {"patient", "patient_id", "PatientID", NULL};
static const char *const scan_names[] = {"scan", "scan_id", "study", "series", NULL};

static int is_slice_file(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && name[0] != '.' &&
           (strcasecmp(name + n - 4, ".dcm") == 0 || strcasecmp(name + n - 4, ".png") == 0);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in folder `path` that `keep` accepts (with the folder path, for
 * the stat), sorted; NULL with *count -1 when the folder cannot be read. */
static char **list_dir(const char *path, int (*keep)(const char *dir, const char *name),
                       int64_t *count)
{
    *count = -1;
    DIR *dir = opendir(path);
    if (!dir)
        return NULL;
    char **names = NULL;
    int64_t n = 0, cap = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (!keep(path, entry->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **bigger = realloc(names, (size_t)cap * sizeof *bigger);
            if (!bigger)
                goto fail;
            names = bigger;
        }
        if (!(names[n] = strdup(entry->d_name)))
            goto fail;
        n++;
    }
    closedir(dir);
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, compare_names);
    *count = n;
    return names ? names : calloc(1, sizeof *names);
fail:
    closedir(dir);
    for (int64_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *count = -2; /* out of memory */
    return NULL;
}

static void free_names(char **names, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* A slice is a regular file (or a link to one) named *.dcm or *.png; a
 * FIFO, device or socket so named is never opened, only reported. */
static int keep_slice(const char *dir, const char *name)
{
    if (!is_slice_file(name))
        return 0;
    char *path = ich_path_join(dir, name);
    struct stat st;
    int keep = path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
    if (path && !keep && stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
        ich_log(ICH_LOG_WARNING, "%s: not a regular file: skipped", path);
    free(path);
    return keep;
}

static int keep_subdir(const char *dir, const char *name)
{
    if (name[0] == '.')
        return 0;
    char *path = ich_path_join(dir, name);
    int keep = path && is_dir(path);
    free(path);
    return keep;
}

/* A cell without spaces around it, in new memory. */
static char *trimmed(const char *cell)
{
    while (*cell == ' ' || *cell == '\t')
        cell++;
    size_t n = strlen(cell);
    while (n > 0 && (cell[n - 1] == ' ' || cell[n - 1] == '\t'))
        n--;
    return strndup(cell, n);
}

/* Add one row per slice file of root/patient/scan. */
static ich_status add_scan(ich_labels *out, const char *root, const char *patient,
                           const char *scan, const float *values, const char *csv_name,
                           long long line)
{
    char *patient_dir = ich_path_join(root, patient);
    char *scan_dir = patient_dir ? ich_path_join(patient_dir, scan) : NULL;
    free(patient_dir);
    if (!scan_dir)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", root);
    int64_t count;
    char **files = list_dir(scan_dir, keep_slice, &count);
    free(scan_dir);
    if (count == -2)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", root);
    if (count < 0) {
        ich_log(ICH_LOG_WARNING, "%s:%lld: scan %s/%s has no folder under %s: skipped", csv_name,
                line, patient, scan, root);
        return ICH_OK;
    }
    if (count == 0)
        ich_log(ICH_LOG_WARNING, "%s:%lld: scan %s/%s has no .dcm or .png file", csv_name, line,
                patient, scan);
    ich_status st = ICH_OK;
    for (int64_t i = 0; i < count && st == ICH_OK; i++) {
        size_t n = strlen(files[i]) - 4; /* without the extension */
        ich_buf id = {0};
        ich_buf_printf(&id, "%s/%s/%.*s", patient, scan, (int)n, files[i]);
        if (id.failed)
            st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", root);
        else if (ich_labels_find(out, id.data) >= 0)
            st = ich_fail(ICH_ERR_FORMAT,
                          "%s:%lld: scan %s/%s listed twice (or slice %s has both a .dcm "
                          "and a .png file)",
                          csv_name, line, patient, scan, id.data);
        else
            st = ich_labels_add(out, id.data, values, patient);
        ich_buf_free(&id);
    }
    free_names(files, count);
    return st;
}

/* Warn about scan folders under root that no CSV row names. */
static ich_status warn_unlisted(const char *root, const ich_labels *listed)
{
    int64_t npatients;
    char **patients = list_dir(root, keep_subdir, &npatients);
    if (npatients == -2)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", root);
    for (int64_t p = 0; p < npatients; p++) {
        char *patient_dir = ich_path_join(root, patients[p]);
        int64_t nscans = -1;
        char **scans = patient_dir ? list_dir(patient_dir, keep_subdir, &nscans) : NULL;
        for (int64_t s = 0; s < nscans; s++) {
            ich_buf key = {0};
            ich_buf_printf(&key, "%s/%s", patients[p], scans[s]);
            if (!key.failed && ich_labels_find(listed, key.data) < 0)
                ich_log(ICH_LOG_WARNING, "%s/%s: scan folder without a label row: skipped", root,
                        key.data);
            ich_buf_free(&key);
        }
        if (nscans > 0)
            free_names(scans, nscans);
        else
            free(scans);
        free(patient_dir);
    }
    if (npatients > 0)
        free_names(patients, npatients);
    else
        free(patients);
    return ICH_OK;
}

/* The rows of the scan CSV, as slice rows in `out`; every "patient/scan"
 * named goes into `listed`. */
static ich_status propagate_rows(const ich_csv *csv, const char *root, int patient_col,
                                 int scan_col, const int *columns, int32_t count,
                                 ich_labels *out, ich_labels *listed)
{
    const char *name = ich_csv_name(csv);
    float values[ICH_LABELS_MAX_COLUMNS];
    float none = 0.0f;
    ich_status st = ICH_OK;
    for (int64_t r = 0; r < ich_csv_rows(csv) && st == ICH_OK; r++) {
        long long line = (long long)ich_csv_line(csv, r);
        for (int32_t c = 0; c < count && st == ICH_OK; c++)
            st = ich_labels_csv_value(csv, r, columns[c], &values[c]);
        if (st != ICH_OK)
            break;
        char *patient = trimmed(ich_csv_cell(csv, r, patient_col));
        char *scan = trimmed(ich_csv_cell(csv, r, scan_col));
        ich_buf key = {0};
        if (!patient || !scan) {
            st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", name);
        } else if (ich_id_problem(patient, NULL, 1) || ich_id_problem(scan, NULL, 1)) {
            const char *bad = ich_id_problem(patient, NULL, 1) ? patient : scan;
            char shown[128];
            ich_id_printable(bad, shown, sizeof shown);
            st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: %s \"%s\" is not a folder name: %s", name,
                          line, bad == patient ? "patient" : "scan", shown,
                          ich_id_problem(bad, NULL, 1));
        } else {
            ich_buf_printf(&key, "%s/%s", patient, scan);
            if (key.failed)
                st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", name);
            else if (ich_labels_find(listed, key.data) >= 0)
                st = ich_fail(ICH_ERR_FORMAT, "%s:%lld: scan %s listed twice", name, line,
                              key.data);
            else if ((st = ich_labels_add(listed, key.data, &none, NULL)) == ICH_OK)
                st = add_scan(out, root, patient, scan, values, name, line);
        }
        ich_buf_free(&key);
        free(patient);
        free(scan);
    }
    return st;
}

ich_status ich_labels_propagate(const char *root, const char *scan_csv, ich_labels **out)
{
    if (out)
        *out = NULL;
    if (!root || !scan_csv || !out)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_labels_propagate: NULL argument");
    struct stat st_root;
    if (stat(root, &st_root) != 0)
        return ich_fail(ICH_ERR_IO, "%s: cannot read: %s", root, strerror(errno));
    if (!S_ISDIR(st_root.st_mode))
        return ich_fail(ICH_ERR_IO, "%s: not a folder", root);
    ich_csv *csv = NULL;
    ich_status st = ich_csv_read(scan_csv, &csv);
    if (st != ICH_OK)
        return st;
    int patient_col = ich_labels_csv_find_any(csv, patient_names);
    int scan_col = ich_labels_csv_find_any(csv, scan_names);
    if (patient_col < 0 || scan_col < 0) {
        ich_csv_free(csv);
        return ich_fail(ICH_ERR_FORMAT, "%s: no %s column (want one named %s)", scan_csv,
                        patient_col < 0 ? "patient" : "scan",
                        patient_col < 0 ? "patient, patient_id or PatientID"
                                        : "scan, scan_id, study or series");
    }
    unsigned char skip[1024] = {0};
    int ncols = ich_csv_columns(csv);
    unsigned char *skip_p = ncols <= 1024 ? skip : calloc((size_t)ncols, 1);
    int columns[ICH_LABELS_MAX_COLUMNS];
    int32_t count = 0;
    ich_labels *labels = NULL, *listed = NULL;
    const char *key_column = "scan";
    if (!skip_p) {
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", scan_csv);
    } else {
        skip_p[patient_col] = skip_p[scan_col] = 1;
        st = ich_labels_csv_label_columns(csv, skip_p, columns, &count);
        if (skip_p != skip)
            free(skip_p);
    }
    if (st == ICH_OK)
        st = ich_labels_csv_create(csv, columns, count, &labels);
    if (st == ICH_OK)
        st = ich_labels_create(&key_column, 1, &listed);
    if (st == ICH_OK)
        st = propagate_rows(csv, root, patient_col, scan_col, columns, count, labels, listed);
    if (st == ICH_OK)
        st = warn_unlisted(root, listed);
    if (st == ICH_OK && ich_labels_rows(labels) == 0)
        st = ich_fail(ICH_ERR_NOT_FOUND, "%s: no slice file found for any scan of %s", root,
                      scan_csv);
    ich_csv_free(csv);
    ich_labels_free(listed);
    if (st != ICH_OK) {
        ich_labels_free(labels);
        return st;
    }
    *out = labels;
    return ICH_OK;
}
