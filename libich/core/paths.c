/* Image IDs as file names inside a folder, and walking folders without
 * loops: the one place for both (see <ich/files.h>). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/paths.h"

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

/* Deepest folder nesting a walk descends into. */
#define WALK_MAX_DEPTH 64

static const char *special_kind(mode_t mode);

/* ---- Image IDs ------------------------------------------------------------ */

const char *ich_id_problem(const char *id, const char *suffix, int one_name)
{
    if (!id || !id[0])
        return "it is empty";
    size_t n = strlen(id), suffix_len = suffix ? strlen(suffix) : 0;
    if (n > ICH_ID_MAX)
        return "it is longer than 1024 bytes";
    if (suffix && strchr(suffix, '/'))
        return "its extension holds a '/'";
    if (id[0] == '/')
        return "it is an absolute path";
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "it holds a control character";
    if (one_name && strchr(id, '/'))
        return "it holds a '/'";
    for (const char *p = id;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0)
            return "it holds an empty name (\"//\" or a '/' at the end)";
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return "it holds a \"..\" component";
        if (len == 1 && p[0] == '.')
            return "it holds a \".\" component";
        if (len + (end ? 0 : suffix_len) > NAME_MAX)
            return "a name in it is longer than 255 bytes";
        if (!end)
            return NULL;
        p = end + 1;
    }
}

void ich_id_printable(const char *id, char *out, size_t size)
{
    size_t at = 0;
    if (size == 0)
        return;
    const char *p = id ? id : "";
    for (; *p && at + 5 < size && at < 100; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            at += (size_t)snprintf(out + at, size - at, c == '"' || c == '\\' ? "\\%c" : "\\x%02x",
                                   c);
        else
            out[at++] = (char)c;
    }
    if (*p && at + 4 < size) { /* cut short */
        memcpy(out + at, "...", 3);
        at += 3;
    }
    out[at] = '\0';
}

ich_status ich_id_path(const char *dir, const char *id, const char *suffix, int one_name,
                       char **out)
{
    *out = NULL;
    const char *why = ich_id_problem(id, suffix, one_name);
    if (why) {
        char shown[128];
        ich_id_printable(id, shown, sizeof shown);
        return ich_fail(ICH_ERR_FORMAT, "ID \"%s\" cannot name a file inside %s: %s", shown,
                        dir && dir[0] ? dir : ".", why);
    }
    size_t n = strlen(id) + (suffix ? strlen(suffix) : 0) + 1;
    char *name = malloc(n);
    if (name)
        snprintf(name, n, "%s%s", id, suffix ? suffix : "");
    *out = name ? ich_path_join(dir, name) : NULL;
    free(name);
    if (!*out)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", id);
    return ICH_OK;
}

ich_status ich_id_input_path(const char *dir, const char *id, const char *suffix, char **out)
{
    ich_status st = ich_id_path(dir, id, suffix, 0, out);
    struct stat sb;
    if (st == ICH_OK && stat(*out, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
        st = ich_fail(ICH_ERR_IO, "%s: %s: never opened", *out, special_kind(sb.st_mode));
        free(*out);
        *out = NULL;
    }
    return st;
}

ich_status ich_image_path(const char *folder, const char *id, const char *extension,
                          char **path)
{
    if (path)
        *path = NULL;
    if (!folder || !id || !path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_image_path: NULL %s",
                        !folder ? "folder" : !id ? "id" : "path");
    if (extension && strchr(extension, '/'))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_image_path: extension \"%.64s\" holds a '/'",
                        extension);
    return ich_id_path(folder, id, extension, 0, path);
}

int ich_is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- Walking folders -------------------------------------------------------- */

/* The (device, inode) pairs seen: open addressing, power-of-two capacity. */
typedef struct inode_set {
    struct { dev_t dev; ino_t ino; int used; } *slots;
    size_t count, capacity;
} inode_set;

static size_t inode_hash(dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ ((uint64_t)dev + 0x632be59bd9b4e019ull);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 29));
}

/* Add the inode of `st`: 1 when new, 0 when seen before, -1 out of memory. */
static int inode_add(inode_set *set, const struct stat *st)
{
    if (2 * (set->count + 1) > set->capacity) {
        size_t capacity = set->capacity ? 2 * set->capacity : 256;
        __typeof__(set->slots) slots = calloc(capacity, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < set->capacity; i++) {
            if (!set->slots[i].used)
                continue;
            size_t j = inode_hash(set->slots[i].dev, set->slots[i].ino) & (capacity - 1);
            while (slots[j].used)
                j = (j + 1) & (capacity - 1);
            slots[j] = set->slots[i];
        }
        free(set->slots);
        set->slots = slots;
        set->capacity = capacity;
    }
    size_t j = inode_hash(st->st_dev, st->st_ino) & (set->capacity - 1);
    for (; set->slots[j].used; j = (j + 1) & (set->capacity - 1))
        if (set->slots[j].dev == st->st_dev && set->slots[j].ino == st->st_ino)
            return 0;
    set->slots[j].dev = st->st_dev;
    set->slots[j].ino = st->st_ino;
    set->slots[j].used = 1;
    set->count++;
    return 1;
}

/* Something reached through a symbolic link, visited after the real tree. */
typedef struct pending {
    char *path, *relative;
    int depth;
} pending;

typedef struct walker {
    const ich_walk_config *config;
    ich_file_fn fn;
    void *user;
    inode_set seen;
    pending *links;
    size_t link_count, link_capacity, next_link;
    int64_t skipped;
    ich_status status; /* set on out of memory or when fn stops */
} walker;

/* Something not visited: counted, and fn told why. */
static void skip(walker *w, const char *path, const char *relative, const char *why)
{
    w->skipped++;
    if (w->status == ICH_OK && w->fn(w->user, path, relative, why) != 0)
        w->status = ich_fail(ICH_ERR_CANCELLED, "%s: walk cancelled", path);
}

static const char *special_kind(mode_t mode)
{
    return S_ISFIFO(mode)  ? "a FIFO, not a regular file"
           : S_ISCHR(mode) ? "a character device, not a regular file"
           : S_ISBLK(mode) ? "a block device, not a regular file"
           : S_ISSOCK(mode) ? "a socket, not a regular file"
                            : "not a regular file or folder";
}

static void oom(walker *w, const char *path)
{
    if (w->status == ICH_OK)
        w->status = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory walking the folder", path);
}

/* A regular file: give it to fn unless its inode was seen. */
static void visit_file(walker *w, const char *path, const char *relative, const struct stat *st)
{
    int added = inode_add(&w->seen, st);
    if (added < 0)
        oom(w, path);
    else if (added && w->fn(w->user, path, relative, NULL) != 0)
        w->status = ich_fail(ICH_ERR_CANCELLED, "%s: walk cancelled", path);
}

static void defer_link(walker *w, char *path, char *relative, int depth)
{
    if (w->link_count == w->link_capacity) {
        size_t capacity = w->link_capacity ? 2 * w->link_capacity : 16;
        pending *links = realloc(w->links, capacity * sizeof *links);
        if (!links) {
            oom(w, path);
            free(path);
            free(relative);
            return;
        }
        w->links = links;
        w->link_capacity = capacity;
    }
    w->links[w->link_count++] = (pending){path, relative, depth};
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entry names of folder `path`, sorted, in *count; NULL with *error
 * set (the errno of opendir(), or ENOMEM) when it cannot be read. */
static char **read_names(const char *path, int hidden, size_t *count, int *error)
{
    DIR *d = opendir(path);
    if (!d) {
        *error = errno;
        return NULL;
    }
    char **names = NULL;
    size_t n = 0, capacity = 0;
    struct dirent *e;
    *error = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            (!hidden && e->d_name[0] == '.'))
            continue;
        if (n == capacity) {
            capacity = capacity ? 2 * capacity : 64;
            char **bigger = realloc(names, capacity * sizeof *bigger);
            if (!bigger)
                break;
            names = bigger;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    if (e) { /* stopped early: out of memory */
        *error = ENOMEM;
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        closedir(d);
        return NULL;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, by_name);
    *count = n;
    if (!names && !(names = calloc(1, sizeof *names)))
        *error = ENOMEM;
    return names;
}

static void walk_dir(walker *w, const char *path, const char *relative, int depth);

static int is_skip_dir(const walker *w, const struct stat *st)
{
    const struct stat *skip = w->config->skip_dir;
    return skip && st->st_dev == skip->st_dev && st->st_ino == skip->st_ino;
}

/* One entry of a folder, by lstat: real folders and files now, symbolic
 * links later, anything else skipped unopened. */
static void walk_entry(walker *w, char *path, char *relative, int depth)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        skip(w, path, relative, strerror(errno));
    } else if (S_ISLNK(st.st_mode)) {
        defer_link(w, path, relative, depth);
        return; /* owned by the list now */
    } else if (S_ISDIR(st.st_mode)) {
        if (is_skip_dir(w, &st)) {
            /* the output folder inside the input tree */
        } else if (depth > WALK_MAX_DEPTH) {
            skip(w, path, relative, "folders nested more than 64 deep");
        } else {
            int added = inode_add(&w->seen, &st);
            if (added < 0)
                oom(w, path);
            else if (added) /* else: a bind mount reaching a folder again */
                walk_dir(w, path, relative, depth);
        }
    } else if (S_ISREG(st.st_mode)) {
        visit_file(w, path, relative, &st);
    } else {
        skip(w, path, relative, special_kind(st.st_mode));
    }
    free(path);
    free(relative);
}

static void walk_dir(walker *w, const char *path, const char *relative, int depth)
{
    size_t count = 0;
    int error = 0;
    char **names = read_names(path, w->config->hidden, &count, &error);
    if (!names) {
        if (error == ENOMEM)
            oom(w, path);
        else
            skip(w, path, relative, strerror(error));
        return;
    }
    for (size_t i = 0; i < count; i++) {
        if (w->status == ICH_OK) {
            char *child = ich_path_join(path, names[i]);
            char *child_relative = ich_path_join(relative, names[i]);
            if (child && child_relative) {
                walk_entry(w, child, child_relative, depth + 1);
            } else {
                free(child);
                free(child_relative);
                oom(w, path);
            }
        }
        free(names[i]);
    }
    free(names);
}

/* A symbolic link met during the walk, after the real tree was walked. */
static void follow_link(walker *w, const pending *link)
{
    struct stat st;
    if (stat(link->path, &st) != 0) {
        skip(w, link->path, link->relative,
             errno == ELOOP ? "symbolic link loop" : "broken symbolic link");
    } else if (S_ISDIR(st.st_mode)) {
        /* a folder already walked (a link to "." or to a parent) is not
         * walked again, nor one linked to the folder to skip */
        int added = is_skip_dir(w, &st) ? 0 : inode_add(&w->seen, &st);
        if (added < 0)
            oom(w, link->path);
        else if (added && link->depth > WALK_MAX_DEPTH)
            skip(w, link->path, link->relative, "folders nested more than 64 deep");
        else if (added)
            walk_dir(w, link->path, link->relative, link->depth);
    } else if (S_ISREG(st.st_mode)) {
        visit_file(w, link->path, link->relative, &st);
    } else {
        skip(w, link->path, link->relative, special_kind(st.st_mode));
    }
}

ich_status ich_walk(const char *folder, const ich_walk_config *config, ich_file_fn fn, void *user,
                    int64_t *skipped)
{
    static const ich_walk_config defaults = {0, NULL};
    if (skipped)
        *skipped = 0;
    if (!folder || !fn)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_files_walk: NULL %s",
                        folder ? "fn" : "folder");
    struct stat st;
    if (stat(folder, &st) != 0)
        return ich_fail(ICH_ERR_IO, "%s: cannot read folder: %s", folder, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ich_fail(ICH_ERR_IO, "%s: not a folder", folder);
    walker w = {config ? config : &defaults, fn, user, {0}, NULL, 0, 0, 0, 0, ICH_OK};
    if (inode_add(&w.seen, &st) < 0)
        oom(&w, folder);
    else
        walk_dir(&w, folder, "", 0);
    /* The links, each after everything found before it: a link whose
     * target lies in the real tree finds it seen. walk_dir() may add more. */
    for (; w.next_link < w.link_count; w.next_link++) {
        pending link = w.links[w.next_link];
        if (w.status == ICH_OK)
            follow_link(&w, &link);
        free(link.path);
        free(link.relative);
    }
    free(w.links);
    free(w.seen.slots);
    if (skipped)
        *skipped = w.skipped;
    return w.status;
}

ich_status ich_files_walk(const char *folder, uint32_t flags, ich_file_fn fn, void *user,
                          int64_t *skipped)
{
    ich_walk_config config = {(flags & ICH_WALK_HIDDEN) != 0, NULL};
    return ich_walk(folder, &config, fn, user, skipped);
}
