/* Internal: ICH_VECTORIZE marks a hot float loop for an AVX2 clone beside
 * the baseline x86-64 code; the loader picks one at run time (GCC function
 * multi-versioning). Elsewhere it expands to nothing. */
#ifndef ICH_INTERNAL_VECTORIZE_H
#define ICH_INTERNAL_VECTORIZE_H

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define ICH_VECTORIZE __attribute__((target_clones("avx2", "default")))
#else
#define ICH_VECTORIZE
#endif

#endif
