/* Internal: reading and writing safetensors files.
 *
 * The format (https://github.com/huggingface/safetensors): an unsigned
 * 64-bit little-endian header length N, then N bytes of JSON
 *
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
 *    ...}
 *
 * (padded with spaces), then the data section: every tensor's elements,
 * row-major, little-endian, at [begin, end) relative to the start of the
 * data section. This module knows nothing about models: model_file.c
 * (and optim/checkpoint.c) map model and optimizer tensors onto it. The
 * header's JSON is read by core/json.c's strict parser.
 *
 * The reader is strict, as the reference implementation is, and more: the
 * header must be well-formed JSON (UTF-8, no duplicate keys, no unknown
 * fields in a tensor entry), metadata values must be strings, every dtype
 * known, every shape's byte size equal to its data_offsets span, and the
 * tensors must tile the data section exactly (no overlap, no hole, nothing
 * after the last one). Anything else is ICH_ERR_FORMAT with a message that
 * names the file and the byte offset in it.
 */
#ifndef ICH_INTERNAL_SAFETENSORS_H
#define ICH_INTERNAL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most dimensions a tensor may have (files with more are ICH_ERR_UNSUPPORTED). */
#define ICH_ST_MAX_DIMS 8

/* Largest header accepted (the reference implementation's limit). */
#define ICH_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* Largest file read: the header, and a model's parameters at their limit
 * (ICH_MODEL_MAX_PARAM_BYTES in ich/model.h) with two optimizer moments
 * each (Adam). Larger files are ICH_ERR_FORMAT before being read. */
#define ICH_ST_MAX_FILE (8 + ICH_ST_MAX_HEADER + (uint64_t)3 * ((uint64_t)1 << 30))

/* Element types of the format, as named in the header. */
typedef enum ich_st_dtype {
    ICH_ST_BOOL = 0,
    ICH_ST_U8,
    ICH_ST_I8,
    ICH_ST_F8_E4M3,
    ICH_ST_F8_E5M2,
    ICH_ST_I16,
    ICH_ST_U16,
    ICH_ST_F16,
    ICH_ST_BF16,
    ICH_ST_I32,
    ICH_ST_U32,
    ICH_ST_F32,
    ICH_ST_I64,
    ICH_ST_U64,
    ICH_ST_F64,
    ICH_ST_DTYPE_COUNT
} ich_st_dtype;

/* Header name of a dtype ("F32"), NULL when out of range. */
const char *ich_st_dtype_name(ich_st_dtype dtype);

/* Bytes per element (1, 2, 4 or 8), 0 when out of range. */
size_t ich_st_dtype_size(ich_st_dtype dtype);

/* A tensor: in a file read (pointers into the file's memory) or to write
 * (pointers to the caller's memory). */
typedef struct ich_st_tensor {
    const char *name;
    ich_st_dtype dtype;
    int32_t ndim;                    /* 0 (a scalar) .. ICH_ST_MAX_DIMS */
    int64_t shape[ICH_ST_MAX_DIMS];
    const void *data;                /* little-endian elements as stored in the
                                        file (maybe unaligned): read them with
                                        ich_st_tensor_copy(); for writing, host
                                        order */
    size_t nbytes;                   /* element count x dtype size */
    uint64_t begin;                  /* data_offsets[0] (reading only) */
} ich_st_tensor;

/* A metadata entry. */
typedef struct ich_st_meta {
    const char *key;
    const char *value;
} ich_st_meta;

/* A parsed file. Everything points into memory the struct owns. */
typedef struct ich_st_file {
    char *path;                 /* name used in messages */
    uint8_t *bytes;             /* the whole file */
    size_t size;
    uint64_t header_size;       /* N */
    ich_st_tensor *tensors;     /* in header order */
    int32_t count;
    ich_st_meta *meta;          /* in header order */
    int32_t meta_count;
    void *internal;             /* the parsed header (ich_json_doc): names, values */
} ich_st_file;

/* Read and validate the file `path` into *file (zeroed first; free it with
 * ich_st_free() whatever the result). Errors: ICH_ERR_INVALID_ARGUMENT,
 * ICH_ERR_IO (cannot open or read), ICH_ERR_FORMAT (not a valid
 * safetensors file: the message names the file, the byte offset and the
 * problem), ICH_ERR_UNSUPPORTED (more than ICH_ST_MAX_DIMS dimensions),
 * ICH_ERR_NO_MEMORY. */
ich_status ich_st_read(const char *path, ich_st_file *file);

/* The same for bytes already in memory (copied); `label` names them in
 * messages. */
ich_status ich_st_parse(const char *label, const void *bytes, size_t size, ich_st_file *file);

/* Free what a read or parse allocated; the struct is zeroed. NULL is a no-op. */
void ich_st_free(ich_st_file *file);

/* Index of the tensor named `name`, or -1. */
int32_t ich_st_find(const ich_st_file *file, const char *name);

/* Value of the metadata entry `key`, or NULL. */
const char *ich_st_metadata(const ich_st_file *file, const char *key);

/* Number of elements of a shape (1 for a scalar); -1 on overflow. */
int64_t ich_st_element_count(int32_t ndim, const int64_t *shape);

/* Copy a read tensor's elements to `dst` (nbytes, aligned for the dtype) in
 * host byte order. */
void ich_st_tensor_copy(const ich_st_tensor *tensor, void *dst);

/* Write a safetensors file with the `count` tensors (in that order, data
 * packed in that order) and `meta_count` metadata entries ("__metadata__",
 * written first; none when meta_count is 0), atomically and durably
 * (ich_write_file_atomic): an existing `path` is replaced only when the new
 * file is complete. Errors: ICH_ERR_INVALID_ARGUMENT (empty, duplicate or
 * non-UTF-8 names, keys or values, a reserved name "__metadata__", a
 * nbytes that does not fit shape and dtype), ICH_ERR_NO_MEMORY, ICH_ERR_IO. */
ich_status ich_st_write(const char *path, const ich_st_tensor *tensors, int32_t count,
                        const ich_st_meta *meta, int32_t meta_count);

/* The same into memory: *out (free() it) receives the file's bytes. */
ich_status ich_st_serialize(const char *label, const ich_st_tensor *tensors, int32_t count,
                            const ich_st_meta *meta, int32_t meta_count, uint8_t **out,
                            size_t *out_size);

#ifdef __cplusplus
}
#endif
#endif
