/* Internal to libich/optim: the floating-point rules and the key=value
 * text of the *_config() functions. */
#ifndef ICH_INTERNAL_OPTIM_H
#define ICH_INTERNAL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "ich/core.h"

/* PyTorch rounds the result of every tensor op to float; where it fuses a
 * multiply and an add (its vectorised add with alpha, addcmul) the code
 * says fmaf() explicitly. The compiler must not contract anything else:
 * put ICH_NO_FP_CONTRACT after the includes of a source file. */
#if defined(__clang__)
#define ICH_NO_FP_CONTRACT _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define ICH_NO_FP_CONTRACT _Pragma("GCC optimize(\"fp-contract=off\")")
#else
#define ICH_NO_FP_CONTRACT
#endif

/* Config text is one line of space-separated "key=value" words; doubles are
 * printed with %.17g so that they read back exactly. Each reader finds
 * `key` in `config` and parses its value; a missing key or a malformed
 * value gives ICH_ERR_FORMAT naming `what` (the calling function). */
ich_status ich_config_word(const char *config, const char *key, char *out, size_t capacity,
                           const char *what);
ich_status ich_config_double(const char *config, const char *key, double *out, const char *what);
ich_status ich_config_int64(const char *config, const char *key, int64_t *out, const char *what);
ich_status ich_config_int32(const char *config, const char *key, int32_t *out, const char *what);

#endif
