/* libFuzzer harness for tg_path_normalize. On success the output must start
 * with '/', never grow, contain no empty or dot segment, no ';', no escape of
 * an unreserved character and no lowercase escape hex; normalising it again
 * must give the same bytes, and so must normalising in place. */
/* The checks are the point of the harness: keep assert() on in every build. */
#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http/path.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static unsigned hexv(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);
}

static void check_output(const char *o, size_t n)
{
    assert(n >= 1 && o[0] == '/');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)o[i];
        assert(c > 0x20 && c < 0x7f && c != ';' && c != '\\' && c != '?' && c != '#');
        if (c == '/') {
            /* segment boundaries: no "//", no "/./", no "/../" (or at the end) */
            assert(i + 1 >= n || o[i + 1] != '/');
            size_t j = i + 1;
            while (j < n && o[j] != '/')
                j++;
            size_t seg = j - i - 1;
            assert(!(seg == 1 && o[i + 1] == '.'));
            assert(!(seg == 2 && o[i + 1] == '.' && o[i + 2] == '.'));
        }
        if (c == '%') {
            assert(i + 2 < n);
            for (int k = 1; k <= 2; k++) {
                unsigned char d = (unsigned char)o[i + k];
                assert((d >= '0' && d <= '9') || (d >= 'A' && d <= 'F'));
            }
            unsigned v = hexv((unsigned char)o[i + 1]) << 4 | hexv((unsigned char)o[i + 2]);
            assert(!unreserved((unsigned char)v) && v != '/' && v != '\\' && v != 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = malloc(size + 1), *again = malloc(size + 1), *inplace = malloc(size + 1);
    size_t n = 0, n2 = 0, n3 = 0;
    int r = tg_path_normalize((const char *)data, size, out, size, &n);
    assert(r == TG_PATH_OK || r == TG_PATH_ERR_BAD || r == TG_PATH_ERR_FORBIDDEN);
    if (size > 0)
        memcpy(inplace, data, size);
    int r3 = tg_path_normalize(inplace, size, inplace, size, &n3);
    assert(r3 == r);
    if (r == TG_PATH_OK) {
        assert(n <= size);
        check_output(out, n);
        assert(tg_path_normalize(out, n, again, n, &n2) == TG_PATH_OK);
        assert(n2 == n && memcmp(again, out, n) == 0);
        assert(n3 == n && memcmp(inplace, out, n) == 0);
    }
    free(out);
    free(again);
    free(inplace);
    return 0;
}
