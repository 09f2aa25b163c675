/* ich_preprocess_folder(): a folder of DICOM slices -> windowed PNGs
 * (<ich/pipeline.h>). The data step that ich-preprocess and Python's
 * ich.preprocess_folder() run; it used to live in the example program. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileutil.h"
#include "core/options.h"
#include "core/parallel.h"
#include "data/dicom_files.h"
#include "dist/comm.h"
#include "dist/shard.h"
#include "ich/pipeline.h"
#include "ich/window.h"

#define OPTIONS_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_preprocess_options, progress_user)
#define SUMMARY_V1_SIZE ICH_OPTIONS_V1_SIZE(ich_preprocess_summary, threads)

void (ich_preprocess_options_init)(ich_preprocess_options *caller)
{
    if (!caller)
        return;
    /* The defaults are made in full, then written only as far as the
     * caller's struct reaches (the header's macro set its size). */
    ich_preprocess_options defaults;
    memset(&defaults, 0, sizeof defaults);
    defaults.size = sizeof defaults;
    ich_options_init_write(caller, &defaults, sizeof defaults, OPTIONS_V1_SIZE);
}

/* "sub/IM1.dcm" -> "<out_dir>/sub/IM1.png" in new memory (a dot in a folder
 * name is not an extension; a name without one gets ".png" appended). */
static char *png_path(const char *out_dir, const char *relative)
{
    const char *base = strrchr(relative, '/');
    base = base ? base + 1 : relative;
    const char *dot = strrchr(base, '.');
    int stem = (int)(dot && dot != base ? (size_t)(dot - relative) : strlen(relative));
    size_t n = strlen(out_dir) + (size_t)stem + 6;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%.*s.png", out_dir, stem, relative);
    return s;
}

typedef struct job {
    const ich_found_files *files;
    int64_t first; /* this rank's block starts here */
    const char *out_dir;
    const ich_window *window;
    int overwrite;
    char **made_dir; /* per worker: the folder it last made (NULL: none yet) */
    atomic_llong converted, existing, failed;
} job;

/* Make the folder that will hold `png`, unless this worker just made it:
 * consecutive files share their folder, and a mkdir per file and level
 * was a measurable share of the system calls (issue 16). A folder that
 * could not be made is not remembered, so each of its files reports it. */
static ich_status make_png_dir(job *j, int worker, const char *png)
{
    size_t n = (size_t)(strrchr(png, '/') - png); /* png_path() put one there */
    char *last = j->made_dir[worker];
    if (last && strlen(last) == n && memcmp(last, png, n) == 0)
        return ICH_OK;
    ich_status st = ich_make_parent_dirs(png);
    if (st == ICH_OK) {
        free(last);
        j->made_dir[worker] = strndup(png, n); /* NULL: made again next time */
    }
    return st;
}

/* Convert one file. Returns ICH_OK for a file converted or kept, the error
 * for one that failed (logged by name here, counted by the caller). */
static ich_status convert_one(void *context, int64_t index, int worker)
{
    job *j = context;
    const ich_found_file *f = &j->files->items[j->first + index];
    char *png = png_path(j->out_dir, f->relative);
    ich_status st;
    if (!png) {
        st = ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", f->path);
    } else if (!j->overwrite && access(png, F_OK) == 0) {
        atomic_fetch_add(&j->existing, 1);
        free(png);
        return ICH_OK;
    } else {
        st = make_png_dir(j, worker, png);
        if (st == ICH_OK)
            st = ich_window_dicom_to_png(j->window, f->path, png);
    }
    free(png);
    if (st == ICH_OK) {
        atomic_fetch_add(&j->converted, 1);
        return ICH_OK;
    }
    /* The reader's errors name the file; others (a folder that cannot be
     * made) get its name added, so every bad file is reported by name. */
    const char *error = ich_last_error();
    if (strstr(error, f->path))
        ich_log(ICH_LOG_WARNING, "skipped: %s", error);
    else
        ich_log(ICH_LOG_WARNING, "skipped %s: %s", f->path, error);
    atomic_fetch_add(&j->failed, 1);
    return st;
}

/* OUT_DIR/recipe.txt: the recipe's line. */
static ich_status write_recipe(const ich_window *window, const char *out_dir)
{
    char text[ICH_WINDOW_STRING_MAX + 1];
    ich_status st = ich_window_to_string(window, text, ICH_WINDOW_STRING_MAX, NULL);
    if (st != ICH_OK)
        return st;
    strcat(text, "\n");
    char *path = ich_path_join(out_dir, "recipe.txt");
    if (!path)
        return ich_fail(ICH_ERR_NO_MEMORY, "%s: out of memory", out_dir);
    st = ich_write_file_atomic(path, text, strlen(text), 0);
    free(path);
    return st;
}

/* A checksum of the list of files, for the ranks to compare. */
static uint64_t list_hash(const ich_found_files *files)
{
    uint64_t hash = ICH_SHARD_HASH_START;
    for (size_t i = 0; i < files->count; i++)
        hash = ich_shard_hash(hash, files->items[i].path, strlen(files->items[i].path) + 1);
    return hash;
}

/* Every rank walks the folder (ranks other than 0 quietly: each skipped
 * entry is reported once) and checks it found the same files as rank 0. */
static ich_status find_files(const char *input_dir, ich_found_files *files,
                             ich_preprocess_summary *done)
{
    ich_log_mute_thread(ich_comm_rank() != 0);
    ich_status st = ich_find_dicom_files(input_dir, files, NULL, NULL, &done->skipped);
    ich_log_mute_thread(0);
    done->files = (int64_t)files->count;
    st = ich_shard_agree(st, "preprocess: finding the DICOM files");
    if (st == ICH_OK)
        st = ich_shard_same(list_hash(files), "DICOM files");
    return st;
}

/* Convert this rank's block of the files (all of them in a single
 * process); the counts in `done` are then every rank's together. */
static ich_status convert_share(const ich_found_files *files, const char *output_dir,
                                const ich_window *window, const ich_preprocess_options *opts,
                                ich_preprocess_summary *done)
{
    int64_t first, end;
    ich_shard_block(done->files, 1, ich_comm_rank(), ich_comm_size(), &first, &end);
    done->threads = ich_thread_count(opts->threads, end - first);
    char **made_dir = calloc((size_t)done->threads, sizeof *made_dir);
    job j = {files, first, output_dir, window, opts->overwrite != 0, made_dir, 0, 0, 0};
    double start = ich_shard_now();
    ich_status st = made_dir ? ich_parallel_for(end - first, done->threads, convert_one, &j,
                                                opts->progress, opts->progress_user, "preprocess",
                                                NULL)
                             : ich_fail(ICH_ERR_NO_MEMORY, "preprocess: out of memory");
    for (int32_t t = 0; made_dir && t < done->threads; t++)
        free(made_dir[t]);
    free(made_dir);
    int64_t counts[3] = {atomic_load(&j.converted), atomic_load(&j.existing),
                         atomic_load(&j.failed)};
    st = ich_shard_agree_work(st, ich_shard_now() - start, "preprocess: converting");
    if (st == ICH_OK)
        st = ich_comm_allreduce_int64(counts, 3, "preprocess: the counts");
    done->converted = counts[0];
    done->existing = counts[1];
    done->failed = counts[2];
    return st;
}

ich_status ich_preprocess_folder(const char *input_dir, const char *output_dir,
                                 const ich_window *window, const ich_preprocess_options *options,
                                 ich_preprocess_summary *summary)
{
    ich_preprocess_summary done;
    memset(&done, 0, sizeof done);
    done.size = sizeof done;
    if (!input_dir || !output_dir || !window)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT, "ich_preprocess_folder: NULL %s",
                        !input_dir ? "input_dir" : !output_dir ? "output_dir" : "window");
    ich_preprocess_options opts;
    ich_preprocess_options_init(&opts);
    ich_status st = ich_options_merge(&opts, sizeof opts, options, OPTIONS_V1_SIZE,
                                      "ich_preprocess_folder");
    if (st == ICH_OK) /* under mpirun, a communicator that cannot start is refused */
        st = ich_comm_start();
    if (st != ICH_OK)
        return st;
    /* The summary is checked now, so that the counts reach it (as far as
     * the caller's size, ich_options_write()) also when the work fails. */
    if (summary && !ich_options_size(summary, sizeof *summary, SUMMARY_V1_SIZE,
                                     "ich_preprocess_folder: summary"))
        return ICH_ERR_INVALID_ARGUMENT;
    if (opts.threads < 0)
        return ich_fail(ICH_ERR_INVALID_ARGUMENT,
                        "ich_preprocess_folder: threads is %d, expected 0 (one per CPU) or more",
                        (int)opts.threads);
    int32_t channels = 0;
    st = ich_window_output_shape(window, 1, 1, &channels, NULL, NULL);
    if (st == ICH_OK && channels != 1 && channels != 3)
        st = ich_fail(ICH_ERR_UNSUPPORTED,
                      "ich_preprocess_folder: the recipe makes %d channels; a PNG takes 1 or 3",
                      (int)channels);
    if (st != ICH_OK)
        return st;

    ich_found_files files = {0};
    st = find_files(input_dir, &files, &done);
    /* Only a folder that could be walked gets outputs: a wrong input path
     * leaves nothing behind. recipe.txt is rank 0's. */
    if (st == ICH_OK) {
        st = ich_make_dirs(output_dir);
        if (st == ICH_OK && ich_comm_rank() == 0)
            st = write_recipe(window, output_dir);
        st = ich_shard_agree(st, "preprocess: the output folder");
    }
    if (st == ICH_OK)
        st = convert_share(&files, output_dir, window, &opts, &done);
    if (st == ICH_OK && ich_comm_rank() == 0)
        ich_log(ICH_LOG_INFO, "preprocess: %lld converted, %lld already there, %lld failed, "
                "of %lld DICOM files under %s",
                (long long)done.converted, (long long)done.existing, (long long)done.failed,
                (long long)done.files, input_dir);
    ich_found_files_free(&files);
    if (summary)
        ich_options_write(summary, &done, sizeof done, SUMMARY_V1_SIZE, "ich_preprocess_folder");
    return st;
}
