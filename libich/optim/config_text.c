/* Reading the key=value config lines of optimizers, schedules and early
 * stopping (see optim_internal.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "optim/optim_internal.h"

/* The value of `key` (pointer into config) and its length, or NULL. */
static const char *find_value(const char *config, const char *key, size_t *length)
{
    size_t key_length = strlen(key);
    const char *p = config;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = p;
        while (*end && *end != ' ')
            end++;
        if (end > p && strncmp(p, key, key_length) == 0 && p[key_length] == '=') {
            *length = (size_t)(end - p) - key_length - 1;
            return p + key_length + 1;
        }
        p = end;
    }
    return NULL;
}

ich_status ich_config_word(const char *config, const char *key, char *out, size_t capacity,
                           const char *what)
{
    size_t length = 0;
    const char *value = config ? find_value(config, key, &length) : NULL;
    if (!value)
        return ich_fail(ICH_ERR_FORMAT, "%s: config has no \"%s=\"", what, key);
    if (length == 0 || length >= capacity)
        return ich_fail(ICH_ERR_FORMAT, "%s: config value of \"%s\" is empty or too long", what,
                        key);
    memcpy(out, value, length);
    out[length] = '\0';
    return ICH_OK;
}

ich_status ich_config_double(const char *config, const char *key, double *out, const char *what)
{
    char word[64];
    ich_status st = ich_config_word(config, key, word, sizeof word, what);
    if (st != ICH_OK)
        return st;
    char *end = NULL;
    errno = 0;
    double value = strtod(word, &end);
    /* ERANGE on underflow still gives the nearest double, which is exact
     * for what %.17g printed; only overflow is an error. */
    if (end == word || *end != '\0' || (errno == ERANGE && (value > 1.0 || value < -1.0)))
        return ich_fail(ICH_ERR_FORMAT, "%s: config value %s=%s is not a number", what, key,
                        word);
    *out = value;
    return ICH_OK;
}

ich_status ich_config_int64(const char *config, const char *key, int64_t *out, const char *what)
{
    char word[64];
    ich_status st = ich_config_word(config, key, word, sizeof word, what);
    if (st != ICH_OK)
        return st;
    char *end = NULL;
    errno = 0;
    long long value = strtoll(word, &end, 10);
    if (end == word || *end != '\0' || errno == ERANGE)
        return ich_fail(ICH_ERR_FORMAT, "%s: config value %s=%s is not an integer", what, key,
                        word);
    *out = (int64_t)value;
    return ICH_OK;
}

ich_status ich_config_int32(const char *config, const char *key, int32_t *out, const char *what)
{
    int64_t value = 0;
    ich_status st = ich_config_int64(config, key, &value, what);
    if (st != ICH_OK)
        return st;
    if (value < INT32_MIN || value > INT32_MAX)
        return ich_fail(ICH_ERR_FORMAT, "%s: config value %s=%lld is out of range", what, key,
                        (long long)value);
    *out = (int32_t)value;
    return ICH_OK;
}
