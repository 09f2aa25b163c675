/* Finding the DICOM files of a folder: the one rule shared by the folder
 * steps of <ich/pipeline.h> (moved here from the example programs, which
 * each had it). */
#include "data/dicom_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/paths.h"

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcasecmp(name + n - k, suffix) == 0;
}

int ich_looks_like_dicom(const char *path, const char *name)
{
    if (has_suffix(name, ".dcm") || has_suffix(name, ".dicom"))
        return 1;
    /* Only a regular file is opened: a FIFO would block the reader. */
    if (!ich_is_regular_file(path))
        return 0;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    int ok = f && fseek(f, 128, SEEK_SET) == 0 && fread(magic, 1, 4, f) == 4 &&
             memcmp(magic, "DICM", 4) == 0;
    if (f)
        fclose(f);
    return ok;
}

ich_status ich_found_files_add(ich_found_files *list, const char *path, const char *relative)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 256;
        ich_found_file *items = realloc(list->items, capacity * sizeof *items);
        if (!items)
            return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory listing files", path);
        list->items = items;
        list->capacity = capacity;
    }
    ich_found_file f = {strdup(path), strdup(relative)};
    if (!f.path || !f.relative) {
        free(f.path);
        free(f.relative);
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory listing files", path);
    }
    list->items[list->count++] = f;
    return ICH_OK;
}

void ich_found_files_free(ich_found_files *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].path);
        free(list->items[i].relative);
    }
    free(list->items);
    memset(list, 0, sizeof *list);
}

typedef struct finding {
    ich_found_files *list;
    ich_found_skip_fn skip;
    void *user;
    ich_status status; /* out of memory while adding */
} finding;

static int visit(void *user, const char *path, const char *relative, const char *skipped)
{
    finding *f = user;
    if (skipped) { /* never opened: reported, the walk goes on */
        ich_log(ICH_LOG_WARNING, "skipped %s: %s", path, skipped);
        return f->skip ? f->skip(f->user, path, skipped) : 0;
    }
    const char *name = strrchr(relative, '/');
    if (!ich_looks_like_dicom(path, name ? name + 1 : relative))
        return 0;
    f->status = ich_found_files_add(f->list, path, relative);
    return f->status != ICH_OK;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const ich_found_file *)a)->path, ((const ich_found_file *)b)->path);
}

ich_status ich_find_dicom_files(const char *folder, ich_found_files *list,
                                ich_found_skip_fn skip, void *user, int64_t *skipped)
{
    size_t first = list->count;
    finding f = {list, skip, user, ICH_OK};
    ich_status status = ich_walk(folder, NULL, visit, &f, skipped);
    if (f.status != ICH_OK)
        return f.status;
    if (status == ICH_OK)
        qsort(list->items + first, list->count - first, sizeof *list->items, by_path);
    return status;
}
