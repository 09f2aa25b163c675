/*
 * ich-select — the pipeline's "select" step.
 *
 * After sampling (ich-labels), the label CSV names a few thousand images out
 * of a source tree that may hold hundreds of thousands. This program puts
 * just those images into a working folder: it copies them (or hard-links,
 * or symlinks them) in parallel, checks every copy against its source,
 * finds an image by its file name anywhere under SRC_DIR when it is not at
 * SRC_DIR/<id>.dcm, reports the images it cannot find, and writes the
 * label CSV of the images that are now in the working folder (default
 * DST_DIR/labels.csv), which is what the next steps read. The exit status
 * is 1 when a file failed or when no image at all was found.
 *
 *   ich-select sampled.csv rsna/stage_2_train/ work/images/ --link
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ich/ich.h>

#include "common.h"

typedef struct options {
    int mode;
    int threads;
    const char *ext;
    const char *out_csv;
    int quiet;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ich-select LABELS.csv SRC_DIR DST_DIR [options]\n"
            "Copy (or link) the images named in LABELS.csv from SRC_DIR into DST_DIR.\n\n"
            "  --link           hard links instead of copies (a copy across file systems)\n"
            "  --symlink        symbolic links to the source files\n"
            "  --threads N      worker threads (default: all cores)\n"
            "  --ext EXT        file extension of the images (default .dcm)\n"
            "  --out-csv PATH   label CSV of the images found (default DST_DIR/labels.csv)\n"
            "  --quiet          no progress bar, warnings or summary\n"
            "  --help           this text\n");
}

static int parse_options(int argc, char **argv, options *o, const char *args[3])
{
    static const struct option longopts[] = {
        {"link", no_argument, 0, 'l'},         {"symlink", no_argument, 0, 's'},
        {"threads", required_argument, 0, 't'}, {"ext", required_argument, 0, 'e'},
        {"out-csv", required_argument, 0, 'o'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    *o = (options){ICH_SELECT_COPY, 0, ".dcm", NULL, 0};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'l': o->mode = ICH_SELECT_HARDLINK; break;
        case 's': o->mode = ICH_SELECT_SYMLINK; break;
        case 'e': o->ext = optarg; break;
        case 'o': o->out_csv = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        case 't':
            errno = 0;
            o->threads = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o->threads < 1 || o->threads > 1024) {
                fprintf(stderr, "ich-select: --threads must be an integer in 1..1024\n");
                return -1;
            }
            break;
        default: usage(stderr); return -1;
        }
    }
    if (argc - optind != 3) {
        usage(stderr);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        args[i] = argv[optind + i];
    return 0;
}

/* Warnings from the library (missing images, failed files) go to stderr
 * on their own line, so the progress bar does not swallow them. */
static void on_log(ich_log_level level, const char *message, void *user)
{
    int bar = *(const int *)user;
    fprintf(stderr, "%sich-select: %s: %s\n", bar ? "\r\033[K" : "",
            level >= ICH_LOG_ERROR ? "error" : "warning", message);
}

int main(int argc, char **argv)
{
    options o;
    const char *args[3];
    if (parse_options(argc, argv, &o, args) != 0)
        return 2;
    const char *csv = args[0], *src = args[1], *dst = args[2];
    static int bar;
    bar = !o.quiet && isatty(STDERR_FILENO);
    if (!o.quiet)
        ich_set_log_callback(on_log, &bar, ICH_LOG_WARNING);

    ich_labels *labels = NULL;
    if (ich_labels_read(csv, &labels) != ICH_OK) {
        fprintf(stderr, "ich-select: %s\n", ich_last_error());
        return 1;
    }
    double start = now();
    progress_bar bar_state = {start, "files", !bar};
    ich_select_options so;
    ich_select_options_init(&so);
    so.mode = o.mode;
    so.threads = o.threads;
    so.extension = o.ext;
    so.progress = show_progress; /* also without a bar: it stops the work on Ctrl-C */
    so.progress_user = &bar_state;
    catch_interrupt();
    int64_t placed = 0, missing = 0, failed = 0, total = ich_labels_rows(labels);
    ich_labels *found = NULL;
    ich_status status =
        ich_labels_select_files(labels, src, dst, &so, &placed, &missing, &failed, &found);
    if (bar)
        fputc('\n', stderr);
    char *default_csv = NULL;
    if (status == ICH_OK) {
        const char *out = o.out_csv;
        if (!out) {
            size_t n = strlen(dst) + sizeof "/labels.csv";
            default_csv = malloc(n);
            if (default_csv)
                snprintf(default_csv, n, "%s/labels.csv", dst);
            out = default_csv;
        }
        status = out ? ich_labels_write(found, out) : ICH_ERR_NO_MEMORY;
        if (status == ICH_OK && !o.quiet) {
            static const char *verbs[] = {"copied", "hard-linked", "symlinked"};
            printf("ich-select: %lld %s, %lld missing, %lld failed, of %lld images in %.2f s\n",
                   (long long)placed, verbs[o.mode], (long long)missing, (long long)failed,
                   (long long)total, now() - start);
            printf("ich-select: wrote %s (%lld rows)\n", out, (long long)ich_labels_rows(found));
        }
    }
    int rc = status != ICH_OK ? report_failure("ich-select", status) : 0;
    free(default_csv);
    ich_labels_free(found);
    ich_labels_free(labels);
    if (rc || failed > 0)
        return rc ? rc : 1;
    if (total > 0 && missing == total) {
        fprintf(stderr, "ich-select: none of the %lld images was found under %s\n",
                (long long)total, src);
        return 1;
    }
    return 0;
}
