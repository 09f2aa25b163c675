/* GDCM's codec messages into libich's log.
 *
 * GDCM routes its own messages through gdcm::Trace (see gdcm_shim.cpp), but
 * two of its codecs print straight to stderr: its bundled libjpeg through
 * libjpeg's default output_message, and OpenJPEG through the error handler
 * GDCM installs (fprintf(stderr)). Neither can be reached through GDCM's
 * API, and redirecting file descriptor 2 would silence the whole process
 * and is not thread-safe. Instead libich.so defines, and exports, the two
 * functions GDCM calls to set those handlers up:
 *   gdcmjpeg{8,12,16}_jpeg_std_error  (GDCM's private copies of libjpeg)
 *   opj_set_error_handler             (OpenJPEG)
 * libich.so comes before GDCM's libraries in the dynamic linker's search
 * order (they are its dependencies, also when Python dlopens it), so GDCM's
 * calls reach these; each calls the real function (dlsym RTLD_NEXT) and,
 * only on a thread that is inside a libich DICOM read, replaces the
 * printing handler with one that logs. Anyone else calling them (a program
 * that uses OpenJPEG itself) gets the real function unchanged.
 *
 * Where a program has OpenJPEG in its global scope before libich (linked
 * to it ahead of libich), that copy wins and its messages print as before:
 * a known limit, documented in docs/dicom-hostile-input.md. */

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "dicom/codec_messages.h"

/* Exported, like the ich_* API (cmake/libich.map.in lists them). */
#define INTERPOSED __attribute__((visibility("default")))

static _Thread_local int reading_depth;

void ich_codec_messages_enter(void) { reading_depth++; }

void ich_codec_messages_leave(void) { reading_depth--; }

/* ---- libjpeg (GDCM's 8-, 12- and 16-bit builds of IJG libjpeg 6b) -------- */

/* The head of libjpeg's struct jpeg_error_mgr (jpeglib.h, the same in
 * every IJG release since 6): the five methods, then fields libich does
 * not touch. A j_common_ptr points at a struct whose first member is the
 * error manager's address. */
typedef struct jpeg_error_head {
    void (*error_exit)(void *cinfo);
    void (*emit_message)(void *cinfo, int level);
    void (*output_message)(void *cinfo);
    void (*format_message)(void *cinfo, char *buffer);
    void (*reset_error_mgr)(void *cinfo);
} jpeg_error_head;

enum { JPEG_MESSAGE_MAX = 200 }; /* JMSG_LENGTH_MAX */

static void jpeg_message_to_log(void *cinfo)
{
    jpeg_error_head *err = *(jpeg_error_head **)cinfo;
    char message[JPEG_MESSAGE_MAX + 1] = {0};
    err->format_message(cinfo, message);
    ich_log(ICH_LOG_WARNING, "GDCM JPEG codec: %s", message);
}

typedef jpeg_error_head *(*jpeg_std_error_fn)(jpeg_error_head *err);

static jpeg_error_head *std_error(const char *name, jpeg_error_head *err)
{
    jpeg_std_error_fn real = (jpeg_std_error_fn)dlsym(RTLD_NEXT, name);
    if (!real)
        return err; /* cannot happen while GDCM, which calls this, is loaded */
    jpeg_error_head *result = real(err);
    if (reading_depth > 0 && result)
        result->output_message = jpeg_message_to_log;
    return result;
}

INTERPOSED jpeg_error_head *gdcmjpeg8_jpeg_std_error(jpeg_error_head *err);
INTERPOSED jpeg_error_head *gdcmjpeg12_jpeg_std_error(jpeg_error_head *err);
INTERPOSED jpeg_error_head *gdcmjpeg16_jpeg_std_error(jpeg_error_head *err);

jpeg_error_head *gdcmjpeg8_jpeg_std_error(jpeg_error_head *err)
{
    return std_error("gdcmjpeg8_jpeg_std_error", err);
}

jpeg_error_head *gdcmjpeg12_jpeg_std_error(jpeg_error_head *err)
{
    return std_error("gdcmjpeg12_jpeg_std_error", err);
}

jpeg_error_head *gdcmjpeg16_jpeg_std_error(jpeg_error_head *err)
{
    return std_error("gdcmjpeg16_jpeg_std_error", err);
}

/* ---- OpenJPEG ------------------------------------------------------------ */

typedef void (*opj_message_fn)(const char *message, void *data);
typedef int (*opj_set_handler_fn)(void *codec, opj_message_fn handler, void *data);

static void opj_message_to_log(const char *message, void *data)
{
    (void)data;
    size_t n = message ? strlen(message) : 0;
    while (n > 0 && message[n - 1] == '\n')
        n--;
    ich_log(ICH_LOG_WARNING, "GDCM JPEG 2000 codec: %.*s", (int)n, message ? message : "");
}

INTERPOSED int opj_set_error_handler(void *codec, opj_message_fn handler, void *data);

int opj_set_error_handler(void *codec, opj_message_fn handler, void *data)
{
    opj_set_handler_fn real = (opj_set_handler_fn)dlsym(RTLD_NEXT, "opj_set_error_handler");
    if (!real)
        return 0;
    if (reading_depth > 0)
        return real(codec, opj_message_to_log, NULL);
    return real(codec, handler, data);
}
