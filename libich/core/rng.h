/* Internal: the one random number generator of libich.
 *
 * Every seeded feature (phantom, sampling, split, augmentation, shuffling)
 * draws from this generator, never from rand(), so a seed gives the same
 * result on every platform and thread count. Work that runs in parallel
 * derives one independent stream per item with ich_rng_init(seed, a, b)
 * (e.g. a = epoch, b = sample index) instead of sharing one generator, so
 * the result does not depend on which thread does which item. */
#ifndef ICH_INTERNAL_RNG_H
#define ICH_INTERNAL_RNG_H

#include <math.h>
#include <stdint.h>

/* Host and device code: the CUDA plugin's dropout kernels draw the same
 * masks as the CPU from these very functions. */
#ifdef __CUDACC__
#define ICH_RNG_FN static inline __host__ __device__
#else
#define ICH_RNG_FN static inline
#endif

/* splitmix64's increment: the state only ever grows by it. */
#define ICH_RNG_GOLDEN 0x9E3779B97F4A7C15ull

typedef struct ich_rng {
    uint64_t state;
} ich_rng;

/* splitmix64 (Steele, Lea, Flood 2014): one step of a well-mixed sequence. */
ICH_RNG_FN uint64_t ich_rng_next(ich_rng *rng)
{
    uint64_t z = (rng->state += ICH_RNG_GOLDEN);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A stream for (seed, a, b): different a or b give unrelated streams. */
ICH_RNG_FN ich_rng ich_rng_init(uint64_t seed, uint64_t a, uint64_t b)
{
    ich_rng rng = {seed};
    /* The call first, then the read of the state it advanced: spelled out,
     * since within one expression C leaves that order unspecified (gcc
     * did it this way, so seeded results are unchanged). */
    uint64_t z = ich_rng_next(&rng);
    rng.state ^= z + a;
    z = ich_rng_next(&rng);
    rng.state ^= z + b;
    ich_rng_next(&rng);
    return rng;
}

/* Skip the next `count` draws (a thread of a GPU kernel starts its
 * element's draw this way instead of drawing the ones before it). */
ICH_RNG_FN void ich_rng_skip(ich_rng *rng, uint64_t count)
{
    rng->state += count * ICH_RNG_GOLDEN;
}

/* Uniform in [0, 1) with 53 random bits. */
ICH_RNG_FN double ich_rng_uniform(ich_rng *rng)
{
    return (double)(ich_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

ICH_RNG_FN double ich_rng_range(ich_rng *rng, double lo, double hi)
{
    return lo + (hi - lo) * ich_rng_uniform(rng);
}

/* Uniform integer in [0, n), without modulo bias (Lemire's method). n > 0. */
ICH_RNG_FN uint64_t ich_rng_below(ich_rng *rng, uint64_t n)
{
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = ich_rng_next(rng);
        unsigned __int128 m = (unsigned __int128)x * n;
        if ((uint64_t)m >= threshold)
            return (uint64_t)(m >> 64);
    }
}

/* Standard normal (Box-Muller; one value per call, the other discarded so
 * that the stream has no hidden state). */
ICH_RNG_FN double ich_rng_normal(ich_rng *rng)
{
    double u = ich_rng_uniform(rng), v = ich_rng_uniform(rng);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Fisher-Yates shuffle of n int64 values. */
ICH_RNG_FN void ich_rng_shuffle_i64(ich_rng *rng, int64_t *values, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ich_rng_below(rng, (uint64_t)i + 1);
        int64_t t = values[i];
        values[i] = values[j];
        values[j] = t;
    }
}

#endif
