/* Tests for ich_labels_select_files() and ich_labels_groups_from_dicom()
 * (<ich/labels.h>): copies verified byte for byte, hard links sharing the
 * inode, symbolic links reaching the source, identical targets kept and
 * different ones replaced, missing IDs counted and left out of `found`,
 * IDs found by name deeper in the tree, an unreadable source counted as
 * failed with nothing half-written left in the destination, progress and
 * cancel, the errors; and patient IDs read from DICOM files written by
 * ich_dicom_write_ct, with a corrupt file counted as unreadable. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ich/ich.h"
#include "test_util.h"

/* ---- Fixture helpers ---------------------------------------------------------- */

static void make_dir(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0777);
            *p = '/';
        }
    mkdir(buf, 0777);
}

/* A file of `size` pseudo-random bytes (seeded by `seed`) at dir/name. */
static void write_random(const char *dir, const char *name, size_t size, uint32_t seed)
{
    char path[4096];
    tu_join(path, sizeof path, dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    make_dir(path);
    *slash = '/';
    uint8_t *data = malloc(size ? size : 1);
    uint32_t state = seed * 747796405u + 1;
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)tu_rand(&state);
    assert_int_equal(tu_write_file(path, data, size), 0);
    free(data);
}

static int same_file_bytes(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    uint8_t *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    int same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

static ich_labels *table_of(const char *const *ids, int n)
{
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    for (int i = 0; i < n; i++) {
        float v[6] = {0};
        v[i % 6] = 1.0f;
        char group[16];
        snprintf(group, sizeof group, "P%d", i / 2);
        assert_int_equal(ich_labels_add(t, ids[i], v, group), ICH_OK);
    }
    return t;
}

/* Number of files under `dir` (recursively) whose name holds `part`. */
static int count_named(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[4096];
        tu_join(path, sizeof path, dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            count += count_named(path, part);
        else
            count += strstr(e->d_name, part) != NULL;
    }
    closedir(d);
    return count;
}

/* src/ with ID_a, ID_b, ID_c at the top, ID_deep two folders down and
 * P1/s1/IM1 under other/; dst/ does not exist yet. */
typedef struct tree {
    char src[1024], dst[1024];
} tree;

static void make_tree(const char *root, tree *t)
{
    tu_join(t->src, sizeof t->src, root, "src");
    tu_join(t->dst, sizeof t->dst, root, "out/dst");
    write_random(t->src, "ID_a.dcm", 1000, 1);
    write_random(t->src, "ID_b.dcm", 300000, 2); /* more than one read chunk */
    write_random(t->src, "ID_c.dcm", 0, 3);      /* empty files copy too */
    write_random(t->src, "x/y/ID_deep.dcm", 500, 4);
    write_random(t->src, "other/P1/s1/IM1.dcm", 700, 5);
    write_random(t->src, "decoy/s1/IM1.dcm", 70, 6); /* same name, wrong folders */
}

static const char *const ALL_IDS[] = {"ID_a", "ID_b", "ID_c", "ID_deep", "P1/s1/IM1",
                                      "ID_gone"};
#define N_IDS 6

static ich_status select_mode(const ich_labels *t, const tree *tr, int mode, int threads,
                              int64_t counts[3], ich_labels **found)
{
    ich_select_options o;
    ich_select_options_init(&o);
    o.mode = mode;
    o.threads = threads;
    return ich_labels_select_files(t, tr->src, tr->dst, &o, &counts[0], &counts[1], &counts[2],
                                   found);
}

/* Paths of an ID's source and target. */
static void paths(const tree *tr, const char *src_rel, const char *id, char *src, char *dst)
{
    snprintf(src, 4096, "%s/%s", tr->src, src_rel);
    snprintf(dst, 4096, "%s/%s.dcm", tr->dst, id);
}

static const char *const SOURCES[] = {"ID_a.dcm", "ID_b.dcm", "ID_c.dcm", "x/y/ID_deep.dcm",
                                      "other/P1/s1/IM1.dcm"};

/* ---- Selecting files ------------------------------------------------------------ */

static void test_copy(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    ich_labels *t = table_of(ALL_IDS, N_IDS), *found = NULL;
    int64_t counts[3];
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_COPY, 3, counts, &found), ICH_OK);
    assert_int_equal(counts[0], 5);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 0);
    for (int i = 0; i < 5; i++) {
        char src[4096], dst[4096];
        paths(&tr, SOURCES[i], ALL_IDS[i], src, dst);
        struct stat s, d;
        assert_int_equal(lstat(dst, &d), 0);
        assert_int_equal(stat(src, &s), 0);
        assert_true(S_ISREG(d.st_mode));
        assert_true(s.st_ino != d.st_ino); /* a copy, not a link */
        assert_true(same_file_bytes(src, dst));
    }
    /* found: the five placed rows, in order, with values and groups. */
    assert_non_null(found);
    assert_int_equal(ich_labels_rows(found), 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(ich_labels_id(found, i), ALL_IDS[i]);
        assert_memory_equal(ich_labels_values(found, i), ich_labels_values(t, i),
                            6 * sizeof(float));
        assert_string_equal(ich_labels_group(found, i), ich_labels_group(t, i));
    }
    assert_int_equal(ich_labels_find(found, "ID_gone"), -1);
    char gone[4096];
    snprintf(gone, sizeof gone, "%s/ID_gone.dcm", tr.dst);
    assert_false(tu_exists(gone));
    assert_int_equal(count_named(tr.dst, ".tmp"), 0);
    ich_labels_free(found);
    ich_labels_free(t);
}

static void test_hardlink_shares_the_inode(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    ich_labels *t = table_of(ALL_IDS, N_IDS), *found = NULL;
    int64_t counts[3];
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_HARDLINK, 2, counts, &found), ICH_OK);
    assert_int_equal(counts[0], 5);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 0);
    for (int i = 0; i < 5; i++) {
        char src[4096], dst[4096];
        paths(&tr, SOURCES[i], ALL_IDS[i], src, dst);
        struct stat s, d;
        assert_int_equal(stat(src, &s), 0);
        assert_int_equal(lstat(dst, &d), 0);
        assert_true(S_ISREG(d.st_mode));
        assert_true(s.st_dev == d.st_dev && s.st_ino == d.st_ino);
    }
    assert_int_equal(ich_labels_rows(found), 5);
    assert_int_equal(count_named(tr.dst, ".tmp"), 0);
    /* Again: everything is already there (same inode) and is kept. */
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_HARDLINK, 2, counts, NULL), ICH_OK);
    assert_int_equal(counts[0], 5);
    assert_int_equal(count_named(tr.dst, ".tmp"), 0);
    ich_labels_free(found);
    ich_labels_free(t);
}

/* Another file system (tmpfs /dev/shm when /tmp is not one): the hard
 * link cannot be made and a verified copy takes its place. */
static void test_hardlink_across_file_systems_copies(void **state)
{
    char shm[] = "/dev/shm/ich_select_XXXXXX";
    if (!mkdtemp(shm))
        skip();
    struct stat a, b;
    if (stat(shm, &a) != 0 || stat(*state, &b) != 0 || a.st_dev == b.st_dev) {
        tu_rmtree(shm);
        skip();
    }
    write_random(shm, "ID_x.dcm", 5000, 9);
    const char *ids[] = {"ID_x"};
    ich_labels *t = table_of(ids, 1);
    char dst[2048], src[4096], target[4096];
    tu_join(dst, sizeof dst, *state, "dst");
    tu_join(src, sizeof src, shm, "ID_x.dcm");
    tu_join(target, sizeof target, dst, "ID_x.dcm");
    ich_select_options o;
    ich_select_options_init(&o);
    o.mode = ICH_SELECT_HARDLINK;
    int64_t copied = 0, missing = 0, failed = 0;
    assert_int_equal(ich_labels_select_files(t, shm, dst, &o, &copied, &missing, &failed, NULL),
                     ICH_OK);
    assert_int_equal(copied, 1);
    assert_int_equal(failed, 0);
    assert_true(same_file_bytes(src, target));
    struct stat d;
    assert_int_equal(lstat(target, &d), 0);
    assert_true(S_ISREG(d.st_mode) && d.st_dev != a.st_dev);
    ich_labels_free(t);
    tu_rmtree(shm);
}

static void test_symlink_points_to_the_source(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    ich_labels *t = table_of(ALL_IDS, N_IDS);
    int64_t counts[3];
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_SYMLINK, 2, counts, NULL), ICH_OK);
    assert_int_equal(counts[0], 5);
    assert_int_equal(counts[1], 1);
    for (int i = 0; i < 5; i++) {
        char src[4096], dst[4096], text[4096], *real;
        paths(&tr, SOURCES[i], ALL_IDS[i], src, dst);
        struct stat d;
        assert_int_equal(lstat(dst, &d), 0);
        assert_true(S_ISLNK(d.st_mode));
        ssize_t n = readlink(dst, text, sizeof text - 1);
        assert_true(n > 0);
        text[n] = '\0';
        assert_int_equal(text[0], '/');
        real = realpath(src, NULL);
        assert_string_equal(text, real);
        free(real);
    }
    assert_int_equal(count_named(tr.dst, ".tmp"), 0);
    ich_labels_free(t);
}

/* An identical file already there is kept (same inode, counted as copied);
 * a different one is replaced with the source's bytes. */
static void test_existing_targets(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    const char *ids[] = {"ID_a", "ID_b"};
    ich_labels *t = table_of(ids, 2);
    write_random(tr.dst, "ID_a.dcm", 1000, 1);  /* the same bytes as the source */
    write_random(tr.dst, "ID_b.dcm", 300000, 77); /* same size, other bytes */
    char a_dst[4096], b_dst[4096], b_src[4096];
    tu_join(a_dst, sizeof a_dst, tr.dst, "ID_a.dcm");
    tu_join(b_dst, sizeof b_dst, tr.dst, "ID_b.dcm");
    tu_join(b_src, sizeof b_src, tr.src, "ID_b.dcm");
    struct stat before_a, before_b, after;
    assert_int_equal(stat(a_dst, &before_a), 0);
    assert_int_equal(stat(b_dst, &before_b), 0);
    assert_false(same_file_bytes(b_src, b_dst));
    int64_t counts[3];
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_COPY, 1, counts, NULL), ICH_OK);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[2], 0);
    assert_int_equal(stat(a_dst, &after), 0);
    assert_true(after.st_ino == before_a.st_ino); /* kept, not rewritten */
    assert_true(same_file_bytes(b_src, b_dst));   /* replaced */
    assert_int_equal(count_named(tr.dst, ".tmp"), 0);
    ich_labels_free(t);
}

/* Only missing files: counted, named in the log, the found table empty. */
static int missing_logged;
static void count_missing(ich_log_level level, const char *message, void *user)
{
    (void)user;
    if (level == ICH_LOG_WARNING && strstr(message, "not found"))
        missing_logged++;
}

static void test_missing_counted(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    ich_labels *t = NULL, *found = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    for (int i = 0; i < 30; i++) {
        float v[6] = {0};
        char id[32];
        snprintf(id, sizeof id, "ID_none_%02d", i);
        assert_int_equal(ich_labels_add(t, id, v, NULL), ICH_OK);
    }
    missing_logged = 0;
    ich_set_log_callback(count_missing, NULL, ICH_LOG_WARNING);
    int64_t counts[3];
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_COPY, 2, counts, &found), ICH_OK);
    ich_set_log_callback(NULL, NULL, ICH_LOG_INFO);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 30);
    assert_int_equal(counts[2], 0);
    assert_int_equal(ich_labels_rows(found), 0);
    assert_int_equal(missing_logged, 21); /* 20 by name, then one count */
    assert_int_equal(count_named(tr.dst, "ID_"), 0);
    ich_labels_free(found);
    ich_labels_free(t);
}

/* The source file cannot be read: failed, nothing left in dst. */
static void test_unreadable_source_fails(void **state)
{
    if (geteuid() == 0)
        skip(); /* root reads anything */
    tree tr;
    make_tree(*state, &tr);
    const char *ids[] = {"ID_a", "ID_b"};
    ich_labels *t = table_of(ids, 2), *found = NULL;
    char a_src[4096];
    tu_join(a_src, sizeof a_src, tr.src, "ID_a.dcm");
    assert_int_equal(chmod(a_src, 0), 0);
    int64_t counts[3];
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_COPY, 2, counts, &found), ICH_OK);
    chmod(a_src, 0644);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 1);
    assert_int_equal(ich_labels_rows(found), 1);
    assert_string_equal(ich_labels_id(found, 0), "ID_b");
    char names[256];
    assert_int_equal(tu_dir_count(tr.dst, names, sizeof names), 1);
    assert_string_equal(names, "ID_b.dcm"); /* no ID_a, no temporary file */
    ich_labels_free(found);
    ich_labels_free(t);
}

/* An ID that would climb out of dst_dir fails and writes nothing. */
static void test_unsafe_id_fails(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    write_random(*state, "out/evil.dcm", 10, 1);
    const char *ids[] = {"../evil", "ID_a"};
    ich_labels *t = table_of(ids, 2);
    int64_t counts[3];
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_COPY, 1, counts, NULL), ICH_OK);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[2], 1);
    assert_int_equal(tu_dir_count(tr.dst, NULL, 0), 1);
    ich_labels_free(t);
}


/* The index walk: links to "." and to a parent end, a FIFO is not opened
 * (it would block), and a file reached only through a linked folder is
 * found once. */
static void test_index_walk_loops_and_fifos(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    char path[4096], elsewhere[4096];
    tu_join(elsewhere, sizeof elsewhere, *state, "elsewhere");
    write_random(elsewhere, "ID_linked.dcm", 90, 7);
    assert_int_equal(symlink(".", tu_join(path, sizeof path, tr.src, "self")), 0);
    assert_int_equal(symlink("..", tu_join(path, sizeof path, tr.src, "x/up")), 0);
    assert_int_equal(symlink(elsewhere, tu_join(path, sizeof path, tr.src, "x/ext")), 0);
    assert_int_equal(mkfifo(tu_join(path, sizeof path, tr.src, "x/ID_fifo.dcm"), 0644), 0);
    const char *ids[] = {"ID_deep", "ID_linked", "ID_fifo"};
    ich_labels *t = table_of(ids, 3);
    int64_t counts[3];
    alarm(20); /* a loop or a blocked FIFO fails the test instead of hanging */
    assert_int_equal(select_mode(t, &tr, ICH_SELECT_COPY, 2, counts, NULL), ICH_OK);
    alarm(0);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 1); /* the FIFO is not an image */
    assert_int_equal(counts[2], 0);
    assert_true(tu_exists(tu_join(path, sizeof path, tr.dst, "ID_linked.dcm")));
    ich_labels_free(t);
}

typedef struct progress_log {
    int calls, cancel_at_first;
    int64_t last_done, last_total;
} progress_log;

static int on_progress(void *user, int64_t done, int64_t total, const char *what)
{
    progress_log *p = user;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    assert_string_equal(what, "select");
    return p->cancel_at_first;
}

static void test_progress_and_cancel(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    ich_labels *t = table_of(ALL_IDS, N_IDS), *found = (ich_labels *)1;
    ich_select_options o;
    ich_select_options_init(&o);
    o.threads = 2;
    o.progress = on_progress;
    progress_log log = {0, 0, 0, 0};
    o.progress_user = &log;
    int64_t copied;
    assert_int_equal(ich_labels_select_files(t, tr.src, tr.dst, &o, &copied, NULL, NULL, NULL),
                     ICH_OK);
    assert_true(log.calls >= 1);
    assert_int_equal(log.last_done, 5);
    assert_int_equal(log.last_total, 5);
    assert_int_equal(copied, 5);

    /* Cancelled: an error saying so, no found table, no temporary file. */
    char other[4096];
    tu_join(other, sizeof other, *state, "dst2");
    progress_log stop = {0, 1, 0, 0};
    o.progress_user = &stop;
    assert_int_equal(ich_labels_select_files(t, tr.src, other, &o, &copied, NULL, NULL, &found),
                     ICH_ERR_CANCELLED);
    assert_non_null(strstr(ich_last_error(), "cancelled"));
    assert_null(found);
    assert_int_equal(count_named(other, ".tmp"), 0);
    ich_labels_free(t);
}

/* One thread or many, the same result; other extensions; NULL options. */
static void test_threads_extension_and_defaults(void **state)
{
    char src[2048], d1[2048], d2[2048];
    tu_join(src, sizeof src, *state, "src");
    tu_join(d1, sizeof d1, *state, "d1");
    tu_join(d2, sizeof d2, *state, "d2");
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    for (int i = 0; i < 40; i++) {
        char id[32], name[64];
        snprintf(id, sizeof id, "IMG%02d", i);
        snprintf(name, sizeof name, i % 2 ? "%s.png" : "deep/%s.png", id);
        if (i % 5)
            write_random(src, name, 100 + (size_t)i * 37, (uint32_t)i);
        float v[6] = {0};
        assert_int_equal(ich_labels_add(t, id, v, NULL), ICH_OK);
    }
    ich_select_options o;
    ich_select_options_init(&o);
    o.extension = ".png";
    int64_t c1, m1, f1, c2, m2, f2;
    o.threads = 1;
    assert_int_equal(ich_labels_select_files(t, src, d1, &o, &c1, &m1, &f1, NULL), ICH_OK);
    o.threads = 8;
    assert_int_equal(ich_labels_select_files(t, src, d2, &o, &c2, &m2, &f2, NULL), ICH_OK);
    assert_int_equal(c1, 32);
    assert_int_equal(m1, 8);
    assert_int_equal(f1, 0);
    assert_int_equal(c2, c1);
    assert_int_equal(m2, m1);
    for (int i = 0; i < 40; i++) {
        char id[32], a[4096], b[4096];
        snprintf(id, sizeof id, "IMG%02d.png", i);
        tu_join(a, sizeof a, d1, id);
        tu_join(b, sizeof b, d2, id);
        assert_int_equal(tu_exists(a), i % 5 != 0);
        if (i % 5)
            assert_true(same_file_bytes(a, b));
    }
    /* NULL options: ".dcm", so nothing of these is found. */
    int64_t missing = 0;
    assert_int_equal(ich_labels_select_files(t, src, d1, NULL, NULL, &missing, NULL, NULL),
                     ICH_OK);
    assert_int_equal(missing, 40);
    ich_labels_free(t);
}

static void test_select_errors(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    ich_labels *t = table_of(ALL_IDS, 2), *found = (ich_labels *)1;
    int64_t c = 7, m = 7, f = 7;
    assert_int_equal(ich_labels_select_files(NULL, tr.src, tr.dst, NULL, &c, &m, &f, &found),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_null(found);
    assert_int_equal(c + m + f, 0);
    assert_int_equal(ich_labels_select_files(t, NULL, tr.dst, NULL, NULL, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_select_files(t, tr.src, NULL, NULL, NULL, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    ich_select_options o;
    ich_select_options_init(&o);
    o.mode = 7;
    assert_int_equal(ich_labels_select_files(t, tr.src, tr.dst, &o, NULL, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    ich_select_options_init(&o);
    o.size = offsetof(ich_select_options, extension);
    assert_int_equal(ich_labels_select_files(t, tr.src, tr.dst, &o, NULL, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    ich_select_options_init(&o);
    o.extension = "/x";
    assert_int_equal(ich_labels_select_files(t, tr.src, tr.dst, &o, NULL, NULL, NULL, NULL),
                     ICH_ERR_INVALID_ARGUMENT);
    /* src_dir missing or a file: ICH_ERR_IO naming it. */
    char nowhere[2048], file[2048];
    tu_join(nowhere, sizeof nowhere, *state, "nowhere");
    assert_int_equal(ich_labels_select_files(t, nowhere, tr.dst, NULL, NULL, NULL, NULL, NULL),
                     ICH_ERR_IO);
    assert_non_null(strstr(ich_last_error(), "nowhere"));
    tu_join(file, sizeof file, tr.src, "ID_a.dcm");
    assert_int_equal(ich_labels_select_files(t, file, tr.dst, NULL, NULL, NULL, NULL, NULL),
                     ICH_ERR_IO);
    /* dst_dir cannot be created (a file is in the way). */
    char blocked[4096];
    tu_join(blocked, sizeof blocked, file, "sub");
    assert_int_equal(ich_labels_select_files(t, tr.src, blocked, NULL, NULL, NULL, NULL, NULL),
                     ICH_ERR_IO);
    ich_labels_free(t);
}

/* dst_dir inside src_dir: the index does not pick up earlier copies, also
 * when a symbolic link in the tree leads to dst_dir. */
static void test_destination_inside_source(void **state)
{
    char src[2048], dst[4096], link[4096];
    tu_join(src, sizeof src, *state, "src");
    tu_join(dst, sizeof dst, src, "selected");
    write_random(src, "a/ID_1.dcm", 50, 1);
    const char *ids[] = {"ID_1", "ID_2"};
    ich_labels *t = table_of(ids, 2);
    write_random(dst, "ID_2.dcm", 50, 2); /* only in the destination */
    assert_int_equal(symlink("../selected", tu_join(link, sizeof link, src, "a/to_selected")), 0);
    int64_t copied, missing;
    assert_int_equal(ich_labels_select_files(t, src, dst, NULL, &copied, &missing, NULL, NULL),
                     ICH_OK);
    assert_int_equal(copied, 1);
    assert_int_equal(missing, 1);
    ich_labels_free(t);
}

/* dst_dir is src_dir: every mode keeps the files as they are (a symbolic
 * link must not replace the file it would point to). */
static void test_destination_is_source(void **state)
{
    tree tr;
    make_tree(*state, &tr);
    const char *ids[] = {"ID_a", "ID_b"};
    ich_labels *t = table_of(ids, 2);
    char a[4096], saved[4096];
    tu_join(a, sizeof a, tr.src, "ID_a.dcm");
    tu_join(saved, sizeof saved, *state, "saved.dcm");
    write_random(*state, "saved.dcm", 1000, 1); /* the bytes of ID_a */
    for (int mode = 0; mode < 3; mode++) {
        ich_select_options o;
        ich_select_options_init(&o);
        o.mode = mode;
        int64_t copied = 0, failed = 0;
        assert_int_equal(ich_labels_select_files(t, tr.src, tr.src, &o, &copied, NULL, &failed,
                                                 NULL),
                         ICH_OK);
        assert_int_equal(copied, 2);
        assert_int_equal(failed, 0);
        struct stat st;
        assert_int_equal(lstat(a, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_true(same_file_bytes(a, saved));
    }
    assert_int_equal(count_named(tr.src, ".tmp"), 0);
    ich_labels_free(t);
}

/* ---- Groups from DICOM ------------------------------------------------------------ */

static void write_ct(const char *dir, const char *id, const char *patient)
{
    int16_t pixels[16];
    for (int i = 0; i < 16; i++)
        pixels[i] = (int16_t)(i * 10);
    ich_ct_slice s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    s.rows = 4;
    s.columns = 4;
    s.pixels = pixels;
    s.rescale_slope = 1;
    s.rescale_intercept = -1024;
    s.patient_id = patient;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.dcm", dir, id);
    assert_int_equal(ich_dicom_write_ct(path, &s), ICH_OK);
}

static int always_stop(void *user)
{
    ++*(int *)user;
    return 1;
}

static void test_groups_from_dicom(void **state)
{
    const char *dir = *state;
    const char *ids[] = {"ID_1", "ID_2", "ID_3", "ID_4", "ID_bad", "ID_absent"};
    const char *patients[] = {"PAT_A", "PAT_B", "PAT_A", "PAT C 9"};
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    for (int i = 0; i < 6; i++) {
        float v[6] = {0};
        assert_int_equal(ich_labels_add(t, ids[i], v, i == 4 ? "kept" : NULL), ICH_OK);
        if (i < 4)
            write_ct(dir, ids[i], patients[i]);
    }
    write_random(dir, "ID_bad.dcm", 600, 3); /* not DICOM */
    int64_t unreadable = -1;
    /* The thread's cancel check stops the reading: no group changes. */
    int asked = 0;
    ich_set_cancel_check(always_stop, &asked);
    ich_status st = ich_labels_groups_from_dicom(t, dir, 3, &unreadable);
    ich_set_cancel_check(NULL, NULL);
    assert_int_equal(st, ICH_ERR_CANCELLED);
    assert_true(asked >= 1);
    assert_non_null(strstr(ich_last_error(), "groups from DICOM: cancelled"));
    assert_string_equal(ich_labels_group(t, 0), "");
    assert_int_equal(ich_labels_groups_from_dicom(t, dir, 3, &unreadable), ICH_OK);
    assert_int_equal(unreadable, 2);
    for (int i = 0; i < 4; i++)
        assert_string_equal(ich_labels_group(t, i), patients[i]);
    assert_string_equal(ich_labels_group(t, 4), "kept");
    assert_string_equal(ich_labels_group(t, 5), "");
    /* Errors. */
    assert_int_equal(ich_labels_groups_from_dicom(NULL, dir, 0, &unreadable),
                     ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_labels_groups_from_dicom(t, NULL, 0, NULL), ICH_ERR_INVALID_ARGUMENT);
    ich_labels_free(t);
}


/* An ID that would leave image_dir is never read: the row keeps its group
 * and counts as unreadable, with its ID and row in the log. */
static void test_groups_from_dicom_hostile_ids(void **state)
{
    const char *dir = *state;
    char images[4096], outside[4096], absolute[4096];
    tu_join(images, sizeof images, dir, "images");
    tu_join(outside, sizeof outside, dir, "outside");
    tu_join(absolute, sizeof absolute, outside, "victim");
    mkdir(images, 0755);
    mkdir(outside, 0755);
    write_ct(images, "ID_1", "PAT_A");
    write_ct(outside, "victim", "VICTIM");
    char fifo[4200];
    snprintf(fifo, sizeof fifo, "%s/ID_fifo.dcm", images);
    assert_int_equal(mkfifo(fifo, 0644), 0); /* reading it would block */
    const char *ids[] = {"ID_1", "../outside/victim", absolute, "ID_fifo"};
    ich_labels *t = NULL;
    assert_int_equal(ich_labels_create(NULL, 0, &t), ICH_OK);
    for (int i = 0; i < 4; i++) {
        float v[6] = {0};
        assert_int_equal(ich_labels_add(t, ids[i], v, "kept"), ICH_OK);
    }
    int64_t unreadable = -1;
    tu_log_capture(ICH_LOG_WARNING);
    alarm(30);
    assert_int_equal(ich_labels_groups_from_dicom(t, images, 2, &unreadable), ICH_OK);
    alarm(0);
    ich_set_log_callback(NULL, NULL, ICH_LOG_WARNING);
    assert_int_equal(unreadable, 3);
    assert_string_equal(ich_labels_group(t, 3), "kept");
    assert_non_null(strstr(tu_log_text, "ID_fifo.dcm: a FIFO, not a regular file: never opened"));
    assert_string_equal(ich_labels_group(t, 0), "PAT_A");
    assert_string_equal(ich_labels_group(t, 1), "kept");
    assert_string_equal(ich_labels_group(t, 2), "kept");
    assert_non_null(strstr(tu_log_text, "../outside/victim (row 2) keeps its group: ID"));
    assert_non_null(strstr(tu_log_text, "absolute path"));
    ich_labels_free(t);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup_tmpdir, tu_teardown_tmpdir)
    const struct CMUnitTest tests[] = {
        T(test_copy),
        T(test_hardlink_shares_the_inode),
        T(test_hardlink_across_file_systems_copies),
        T(test_symlink_points_to_the_source),
        T(test_existing_targets),
        T(test_missing_counted),
        T(test_unreadable_source_fails),
        T(test_unsafe_id_fails),
        T(test_progress_and_cancel),
        T(test_threads_extension_and_defaults),
        T(test_select_errors),
        T(test_destination_inside_source),
        T(test_destination_is_source),
        T(test_groups_from_dicom),
        T(test_groups_from_dicom_hostile_ids),
        T(test_index_walk_loops_and_fifos),
    };
    TU_APPLY_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
