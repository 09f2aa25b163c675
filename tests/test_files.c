/* <ich/files.h>: the one rule that turns an image ID into a file name, and
 * the folder walk that visits every real file once (symbolic link loops,
 * FIFOs, devices). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include "ich/ich.h"
#include "test_util.h"

/* ---- IDs ------------------------------------------------------------------ */

static void expect_refused(const char *id, const char *why)
{
    char *path = (char *)"untouched";
    assert_int_equal(ich_image_path("images", id, ".dcm", &path), ICH_ERR_FORMAT);
    assert_null(path);
    assert_non_null(strstr(ich_last_error(), "images"));
    assert_non_null(strstr(ich_last_error(), why));
}

static void test_image_path_accepts_names_and_folders(void **state)
{
    (void)state;
    const char *ids[] = {"ID_0a1b2c", "P1/scan1/IM4", "a..b", "...", ".hidden", "x y"};
    const char *want[] = {"images/ID_0a1b2c.dcm", "images/P1/scan1/IM4.dcm", "images/a..b.dcm",
                          "images/....dcm", "images/.hidden.dcm", "images/x y.dcm"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char *path = NULL;
        assert_int_equal(ich_image_path("images", ids[i], ".dcm", &path), ICH_OK);
        assert_string_equal(path, want[i]);
        ich_free(path);
    }
    char *path = NULL;
    assert_int_equal(ich_image_path("images/", "a", NULL, &path), ICH_OK);
    assert_string_equal(path, "images/a");
    ich_free(path);
}

static void test_image_path_refuses_hostile_ids(void **state)
{
    (void)state;
    expect_refused("../outside/victim", "\"..\"");
    expect_refused("/etc/passwd", "absolute");
    expect_refused("a/../../b", "\"..\"");
    expect_refused("..", "\"..\"");
    expect_refused("./a", "\".\"");
    expect_refused("a//b", "empty name");
    expect_refused("a/", "empty name");
    expect_refused("", "empty");
    expect_refused("a\nb", "control character");
    expect_refused("a\x1b[2Jb", "control character");
    assert_non_null(strstr(ich_last_error(), "\\x1b")); /* shown escaped, not sent raw */
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    expect_refused(long_name, "longer than 255");
    assert_non_null(strstr(ich_last_error(), "xxx...\" cannot")); /* shown cut short */
    expect_refused("say \"hi\"/..", "\"..\"");
    assert_non_null(strstr(ich_last_error(), "ID \"say \\\"hi\\\"/..\""));
    char *huge = malloc(ICH_ID_MAX + 2);
    for (int i = 0; i <= ICH_ID_MAX; i++)
        huge[i] = i % 100 == 99 ? '/' : 'a';
    huge[ICH_ID_MAX + 1] = '\0';
    expect_refused(huge, "longer than 1024");
    free(huge);
}

static void test_image_path_bad_arguments(void **state)
{
    (void)state;
    char *path = NULL;
    assert_int_equal(ich_image_path(NULL, "a", ".dcm", &path), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_image_path("d", NULL, ".dcm", &path), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_image_path("d", "a", ".dcm", NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_image_path("d", "a", "/../x", &path), ICH_ERR_INVALID_ARGUMENT);
    assert_null(path);
}

/* ---- Walking -------------------------------------------------------------- */

typedef struct seen {
    char relative[64][256];
    int count;
    char skipped[2048]; /* "relative: why" lines */
    int stop_at; /* return non-zero at this call (1-based), 0: never */
} seen;

static int remember(void *user, const char *path, const char *relative, const char *skipped)
{
    seen *s = user;
    size_t n = strlen(path), k = strlen(relative);
    assert_true(n > k && strcmp(path + n - k, relative) == 0 && path[n - k - 1] == '/');
    if (skipped) {
        size_t at = strlen(s->skipped);
        snprintf(s->skipped + at, sizeof s->skipped - at, "%s: %s\n", relative, skipped);
        return 0;
    }
    assert_true(s->count < 64);
    snprintf(s->relative[s->count++], sizeof s->relative[0], "%s", relative);
    return s->stop_at && s->count == s->stop_at;
}

static int seen_has(const seen *s, const char *relative)
{
    int n = 0;
    for (int i = 0; i < s->count; i++)
        n += strcmp(s->relative[i], relative) == 0;
    return n;
}

static void touch(const char *dir, const char *name, const char *text)
{
    char path[4096];
    FILE *f = fopen(tu_join(path, sizeof path, dir, name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_sub(const char *dir, const char *name)
{
    char path[4096];
    assert_int_equal(mkdir(tu_join(path, sizeof path, dir, name), 0755), 0);
}

static void link_to(const char *dir, const char *name, const char *target)
{
    char path[4096];
    assert_int_equal(symlink(target, tu_join(path, sizeof path, dir, name)), 0);
}

/* A walk that could hang fails the test instead: SIGALRM ends it. */
static void arm_alarm(void) { alarm(20); }

static void test_walk_visits_each_real_file_once(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    touch(dir, "a.dcm", "a");
    make_sub(dir, "sub");
    touch(dir, "sub/b.dcm", "b");
    touch(dir, ".hidden.dcm", "h");
    /* two links to ".", one to the parent, one to a sub-folder, one to a
     * file, a hard link, and a link that loops on itself */
    link_to(dir, "self1", ".");
    link_to(dir, "self2", ".");
    link_to(dir, "sub/up", "..");
    link_to(dir, "alias", "sub");
    link_to(dir, "a_link.dcm", "a.dcm");
    char from[4096], to[4096];
    assert_int_equal(link(tu_join(from, sizeof from, dir, "a.dcm"),
                          tu_join(to, sizeof to, dir, "sub/hard.dcm")), 0);
    link_to(dir, "loop", "loop");
    seen s = {0};
    int64_t skipped = -1;
    arm_alarm();
    assert_int_equal(ich_files_walk(dir, 0, remember, &s, &skipped), ICH_OK);
    alarm(0);
    assert_int_equal(s.count, 2); /* each real file once, by its real path */
    assert_int_equal(seen_has(&s, "a.dcm"), 1);
    assert_int_equal(seen_has(&s, "sub/b.dcm"), 1);
    assert_int_equal(skipped, 1); /* the self-loop link */
    assert_string_equal(s.skipped, "loop: symbolic link loop\n");

    memset(&s, 0, sizeof s);
    assert_int_equal(ich_files_walk(dir, ICH_WALK_HIDDEN, remember, &s, NULL), ICH_OK);
    assert_int_equal(s.count, 3);
    assert_int_equal(seen_has(&s, ".hidden.dcm"), 1);
    tu_rmtree(dir);
    free(dir);
}

/* Files only reachable through links are visited, under the link's name. */
static void test_walk_follows_links_outside(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), *other = tu_mkdtemp();
    touch(other, "c.dcm", "c");
    make_sub(dir, "in");
    link_to(dir, "in/ext", other);
    char target[4096];
    link_to(dir, "file.dcm", tu_join(target, sizeof target, other, "c.dcm")); /* same file */
    link_to(other, "back", dir); /* a loop through both trees */
    seen s = {0};
    arm_alarm();
    assert_int_equal(ich_files_walk(dir, 0, remember, &s, NULL), ICH_OK);
    alarm(0);
    assert_int_equal(s.count, 1);
    /* links in a folder come after its real entries, in name order:
     * "file.dcm" (in the top folder) before "in/ext" */
    assert_string_equal(s.relative[0], "file.dcm");
    tu_rmtree(dir);
    tu_rmtree(other);
    free(dir);
    free(other);
}

static void test_walk_skips_fifo_device_socket(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[4096];
    touch(dir, "good.dcm", "g");
    assert_int_equal(mkfifo(tu_join(path, sizeof path, dir, "fifo.dcm"), 0644), 0);
    link_to(dir, "fifo_link.dcm", "fifo.dcm");
    int expected = 2;
    /* a character device (/dev/null's numbers) where this user may make one */
    if (mknod(tu_join(path, sizeof path, dir, "null.dcm"), S_IFCHR | 0644, makedev(1, 3)) == 0)
        expected++;
    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    tu_join(path, sizeof path, dir, "sock.dcm");
    if (sock >= 0 && strlen(path) < sizeof addr.sun_path) {
        strcpy(addr.sun_path, path);
        if (bind(sock, (struct sockaddr *)&addr, sizeof addr) == 0)
            expected++;
    }
    seen s = {0};
    int64_t skipped = 0;
    arm_alarm(); /* opening the FIFO would block for ever */
    assert_int_equal(ich_files_walk(dir, 0, remember, &s, &skipped), ICH_OK);
    alarm(0);
    if (sock >= 0)
        close(sock);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.relative[0], "good.dcm");
    assert_int_equal(skipped, expected);
    assert_non_null(strstr(s.skipped, "fifo.dcm: a FIFO, not a regular file\n"));
    assert_non_null(strstr(s.skipped, "fifo_link.dcm: a FIFO, not a regular file\n"));
    if (expected > 2 && tu_exists(tu_join(path, sizeof path, dir, "null.dcm")))
        assert_non_null(strstr(s.skipped, "null.dcm: a character device"));
    tu_rmtree(dir);
    free(dir);
}

static void test_walk_errors_and_cancel(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    touch(dir, "a.dcm", "a");
    touch(dir, "b.dcm", "b");
    seen s = {.stop_at = 1};
    assert_int_equal(ich_files_walk(dir, 0, remember, &s, NULL), ICH_ERR_CANCELLED);
    assert_non_null(strstr(ich_last_error(), "cancelled"));
    assert_int_equal(s.count, 1);
    char path[4096];
    assert_int_equal(ich_files_walk(tu_join(path, sizeof path, dir, "a.dcm"), 0, remember, &s,
                                    NULL),
                     ICH_ERR_IO);
    assert_non_null(strstr(ich_last_error(), "not a folder"));
    assert_int_equal(ich_files_walk(tu_join(path, sizeof path, dir, "none"), 0, remember, &s,
                                    NULL),
                     ICH_ERR_IO);
    assert_int_equal(ich_files_walk(NULL, 0, remember, &s, NULL), ICH_ERR_INVALID_ARGUMENT);
    assert_int_equal(ich_files_walk(dir, 0, NULL, &s, NULL), ICH_ERR_INVALID_ARGUMENT);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_path_accepts_names_and_folders),
        cmocka_unit_test(test_image_path_refuses_hostile_ids),
        cmocka_unit_test(test_image_path_bad_arguments),
        cmocka_unit_test(test_walk_visits_each_real_file_once),
        cmocka_unit_test(test_walk_follows_links_outside),
        cmocka_unit_test(test_walk_skips_fifo_device_socket),
        cmocka_unit_test(test_walk_errors_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
