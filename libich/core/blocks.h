/* Internal: large per-image buffers kept for reuse by the thread that
 * freed them (issue 16, 3b).
 *
 * Reading a 512 x 512 CT slice takes a few blocks of 0.5-1 MB (the file's
 * bytes, GDCM's decoded pixels, the Hounsfield values), freed when the
 * slice is done. glibc gives blocks that large back to the kernel (munmap,
 * or a thread arena's trim with madvise), so the next slice faults every
 * page in again and the kernel zeroes it: a dataset worker spent more time
 * in page faults than in decoding (514 against 1,709 images/s with malloc
 * tuned by mallopt, which a library must not do behind its host program's
 * back). So these blocks go through a small cache per thread: a freed
 * block is kept (a few at most, ICH_BLOCKS_KEEP_BYTES in all) and handed
 * out again for a request it fits. A thread's blocks are freed when it
 * exits. Sanitizer builds pass every call to malloc/free, so that ASan
 * sees each block's lifetime. */
#ifndef ICH_INTERNAL_BLOCKS_H
#define ICH_INTERNAL_BLOCKS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* At most this many bytes of free blocks are kept per thread. */
#define ICH_BLOCKS_KEEP_BYTES ((size_t)16 << 20)

/* `bytes` of uninitialised memory (aligned as malloc's), NULL when out of
 * memory; free it with ich_block_free (on any thread). */
void *ich_block_alloc(size_t bytes);

/* Give a block back (NULL: nothing); the calling thread may keep it. */
void ich_block_free(void *block);

/* Free the calling thread's kept blocks now. */
void ich_blocks_release(void);

#ifdef __cplusplus
}
#endif
#endif
