/* Internal: ICH_VECTORIZE marks a hot float loop for an AVX2 clone beside
 * the baseline x86-64 code; the loader picks one at run time (GCC function
 * multi-versioning). Elsewhere it expands to nothing. */
#ifndef ICH_INTERNAL_VECTORIZE_H
#define ICH_INTERNAL_VECTORIZE_H

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define ICH_VECTORIZE __attribute__((target_clones("avx2", "default")))
/* The same with an AVX-512 clone (x86-64-v4) too, for loops that gain
 * from the wider vectors (the Winograd transforms: 15% less time). */
#define ICH_VECTORIZE_512 __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define ICH_VECTORIZE
#define ICH_VECTORIZE_512
#endif

#endif
