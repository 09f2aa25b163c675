/* Large buffers kept for reuse per thread (see blocks.h). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/blocks.h"

#if defined(__SANITIZE_ADDRESS__)
#define BLOCKS_KEEP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BLOCKS_KEEP 0
#endif
#endif
#ifndef BLOCKS_KEEP
#define BLOCKS_KEEP 1
#endif

/* Each block starts with its capacity; the caller's memory follows at an
 * offset that keeps malloc's alignment. */
typedef union block_head {
    size_t capacity;
    max_align_t align;
} block_head;

/* Blocks smaller than this are cheap for malloc: not kept. */
#define KEEP_MIN ((size_t)64 << 10)
#define SLOTS 6

typedef struct thread_blocks {
    block_head *kept[SLOTS];
    size_t kept_bytes;
} thread_blocks;

static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_key_ok;

static void thread_blocks_free(void *pointer)
{
    thread_blocks *t = pointer;
    for (int i = 0; i < SLOTS; i++)
        free(t->kept[i]);
    free(t);
}

static void key_create(void)
{
    g_key_ok = pthread_key_create(&g_key, thread_blocks_free) == 0;
}

/* The calling thread's cache, created on first use (NULL: none). */
static thread_blocks *mine(int create)
{
    pthread_once(&g_once, key_create);
    if (!g_key_ok)
        return NULL;
    thread_blocks *t = pthread_getspecific(g_key);
    if (!t && create && (t = calloc(1, sizeof *t)) != NULL && pthread_setspecific(g_key, t) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

void *ich_block_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - sizeof(block_head))
        return NULL;
    thread_blocks *t = BLOCKS_KEEP && bytes >= KEEP_MIN ? mine(0) : NULL;
    if (t) {
        /* the smallest kept block that fits, if it is not more than twice
         * the request (a small request must not pin a big block) */
        int best = -1;
        for (int i = 0; i < SLOTS; i++) {
            block_head *b = t->kept[i];
            if (b && b->capacity >= bytes && b->capacity / 2 <= bytes &&
                (best < 0 || b->capacity < t->kept[best]->capacity))
                best = i;
        }
        if (best >= 0) {
            block_head *b = t->kept[best];
            t->kept[best] = NULL;
            t->kept_bytes -= b->capacity;
            return b + 1;
        }
    }
    block_head *b = malloc(sizeof *b + bytes);
    if (!b)
        return NULL;
    b->capacity = bytes;
    return b + 1;
}

/* Index of an empty slot, or of the smallest kept block when `smallest`. */
static int slot(const thread_blocks *t, int smallest)
{
    int found = -1;
    for (int i = 0; i < SLOTS; i++) {
        if (!smallest && !t->kept[i])
            return i;
        if (smallest && t->kept[i] &&
            (found < 0 || t->kept[i]->capacity < t->kept[found]->capacity))
            found = i;
    }
    return found;
}

void ich_block_free(void *block)
{
    if (!block)
        return;
    block_head *b = (block_head *)block - 1;
    thread_blocks *t = BLOCKS_KEEP && b->capacity >= KEEP_MIN && b->capacity <= ICH_BLOCKS_KEEP_BYTES
                           ? mine(1)
                           : NULL;
    if (!t) {
        free(b);
        return;
    }
    /* make room by dropping the smallest kept blocks */
    while (t->kept_bytes + b->capacity > ICH_BLOCKS_KEEP_BYTES || slot(t, 0) < 0) {
        int small = slot(t, 1);
        t->kept_bytes -= t->kept[small]->capacity;
        free(t->kept[small]);
        t->kept[small] = NULL;
    }
    t->kept[slot(t, 0)] = b;
    t->kept_bytes += b->capacity;
}

void ich_blocks_release(void)
{
    thread_blocks *t = mine(0);
    if (!t)
        return;
    for (int i = 0; i < SLOTS; i++) {
        free(t->kept[i]);
        t->kept[i] = NULL;
    }
    t->kept_bytes = 0;
}
