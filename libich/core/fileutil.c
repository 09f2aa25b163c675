/* Atomic whole-file writes: temporary file, optional fsync, rename. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileutil.h"

static int write_all(int fd, const unsigned char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

/* ---- temporary names of atomic writes ------------------------------------
 *
 * The temporary file of a write to DIR/NAME is DIR/KEY.tmp-ich, where KEY
 * is NAME, or when NAME is too long for a temporary suffix to fit in
 * NAME_MAX its first 200 bytes, '~' and 16 hex digits of a hash of NAME.
 * The writer holds an exclusive flock() on it from creation to the
 * rename. A write killed half way leaves DIR/KEY.tmp-ich unlocked (the
 * kernel drops the lock with the process); the next write of the same
 * file finds it unlocked, takes it over (truncates it) and renames it into
 * place, so stale temporaries are cleaned by the next write of their file
 * and a live writer's temporary is never touched. While another writer
 * holds DIR/KEY.tmp-ich (or it cannot be opened or locked), the write uses
 * a unique DIR/KEY.tmp-<pid>-XXXXXX instead (mkstemp), which only an
 * interrupted write of two concurrent writers of the same file can leave
 * behind. */

#define TEMP_FIXED ".tmp-ich"
#define TEMP_UNIQUE_MAX 23 /* ".tmp-" + an int pid (11 characters) + "-XXXXXX" */

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* DIR/KEY (see above) of `path`, malloc'ed with room for a suffix of
 * TEMP_UNIQUE_MAX bytes; NULL when out of memory. */
static char *temp_key(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t dir = (size_t)(name - path), n = strlen(name);
    char *key = malloc(dir + n + TEMP_UNIQUE_MAX + 32);
    if (!key)
        return NULL;
    memcpy(key, path, dir);
    if (n + TEMP_UNIQUE_MAX <= NAME_MAX) {
        memcpy(key + dir, name, n + 1);
    } else {
        memcpy(key + dir, name, 200);
        snprintf(key + dir + 200, 32, "~%016llx", (unsigned long long)name_hash(name, n));
    }
    return key;
}

/* Open the fixed temporary, locked, empty and of mode 0644; -1 when it
 * is busy or cannot be used. A fresh file (the usual case) is neither
 * truncated nor chmod'ed: on ext4, truncating even an empty file to 0
 * marks it for a flush of its data at close (auto_da_alloc), which cost
 * ich-preprocess a writeback per PNG. */
static int open_fixed_temp(const char *tmp)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            return -1;
        struct stat opened, named;
        /* Only a plain file of ours, not linked elsewhere (it will become
         * the output). */
        if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &opened) != 0
            || !S_ISREG(opened.st_mode) || opened.st_nlink != 1
            || opened.st_uid != geteuid()) {
            close(fd);
            return -1;
        }
        /* Locked, but is it still the file of that name? (The writer that
         * held it may have renamed it into place meanwhile.) */
        if (lstat(tmp, &named) == 0 && named.st_dev == opened.st_dev
            && named.st_ino == opened.st_ino) {
            if ((opened.st_size == 0 || ftruncate(fd, 0) == 0)
                && ((opened.st_mode & 07777) == 0644 || fchmod(fd, 0644) == 0))
                return fd;
            close(fd);
            return -1;
        }
        close(fd);
    }
    return -1;
}

/* Create the temporary of a write to `path`: its name in *tmp (free()),
 * its descriptor returned (locked when it is the fixed name), mode 0644
 * whatever the umask; -1 with errno set on failure. */
static int create_temp(const char *path, char **tmp)
{
    *tmp = temp_key(path);
    if (!*tmp) {
        errno = ENOMEM;
        return -1;
    }
    size_t len = strlen(*tmp);
    memcpy(*tmp + len, TEMP_FIXED, sizeof TEMP_FIXED);
    int fd = open_fixed_temp(*tmp);
    if (fd >= 0)
        return fd;
    snprintf(*tmp + len, TEMP_UNIQUE_MAX + 32, ".tmp-%d-XXXXXX", (int)getpid());
    fd = mkstemp(*tmp); /* mode 0600 */
    if (fd >= 0 && fchmod(fd, 0644) != 0) {
        int saved = errno;
        unlink(*tmp);
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

ich_status ich_write_file_atomic(const char *path, const void *data, size_t size, int durable)
{
    if (!path || (!data && size > 0))
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_write_file_atomic: NULL argument");
    char *tmp = NULL;
    int fd = create_temp(path, &tmp);
    if (fd < 0) {
        ich_status st = ich_fail(ICH_ERR_IO, "%s: cannot create file: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    const char *step = NULL;
    if (write_all(fd, data, size) != 0)
        step = "cannot write";
    else if (durable && fsync(fd) != 0)
        step = "cannot sync";
    int saved_errno = errno;
    /* Close a duplicate to see the errors a close reports (NFS), while the
     * lock stays held until the rename is done. */
    int check = step ? -1 : dup(fd);
    if (!step && (check < 0 || close(check) != 0)) {
        step = "cannot close";
        saved_errno = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "cannot rename temporary file into place";
        saved_errno = errno;
    }
    if (step)
        unlink(tmp);
    close(fd);
    free(tmp);
    if (step)
        return ich_fail(ICH_ERR_IO, "%s: %s: %s", path, step, strerror(saved_errno));
    if (durable)
        sync_parent_dir(path);
    return ICH_OK;
}

ich_status ich_make_dirs(const char *path)
{
    if (!path || !*path)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "empty folder name");
    char *copy = strdup(path);
    if (!copy)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            free(copy);
            return ich_fail(ICH_ERR_IO, "%s: cannot create folder: %s", path, strerror(err));
        }
        if (saved == '\0') {
            int is_dir = stat(copy, &st) == 0 && S_ISDIR(st.st_mode);
            free(copy);
            return is_dir ? ICH_OK
                          : ich_fail(ICH_ERR_IO, "%s: exists and is not a folder", path);
        }
        *p = saved;
    }
}

ich_status ich_make_parent_dirs(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (!slash || slash == path)
        return ICH_OK;
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", path);
    ich_status status = ich_make_dirs(dir);
    free(dir);
    return status;
}

char *ich_path_join(const char *dir, const char *name)
{
    if (!dir || !*dir)
        return strdup(name);
    size_t a = strlen(dir), b = strlen(name);
    char *out = malloc(a + b + 2);
    if (!out)
        return NULL;
    memcpy(out, dir, a);
    size_t at = a;
    if (dir[a - 1] != '/')
        out[at++] = '/';
    memcpy(out + at, name, b + 1);
    return out;
}

void ich_buf_append(ich_buf *buf, const char *text, size_t length)
{
    if (buf->failed)
        return;
    if (buf->length + length + 1 > buf->capacity) {
        size_t capacity = buf->capacity ? buf->capacity : 4096;
        while (capacity < buf->length + length + 1)
            capacity *= 2;
        char *data = realloc(buf->data, capacity);
        if (!data) {
            buf->failed = 1;
            return;
        }
        buf->data = data;
        buf->capacity = capacity;
    }
    memcpy(buf->data + buf->length, text, length);
    buf->length += length;
    buf->data[buf->length] = '\0';
}

void ich_buf_printf(ich_buf *buf, const char *fmt, ...)
{
    char small[512];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(small, sizeof small, fmt, args);
    va_end(args);
    if (n < 0) {
        buf->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        ich_buf_append(buf, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        buf->failed = 1;
        return;
    }
    va_start(args, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, args);
    va_end(args);
    ich_buf_append(buf, big, (size_t)n);
    free(big);
}

void ich_buf_free(ich_buf *buf)
{
    free(buf->data);
    *buf = (ich_buf){0};
}
