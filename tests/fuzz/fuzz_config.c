/* libFuzzer harness for the configuration loader: arbitrary bytes through
 * tg_config_load_string, then the JSON dump of anything that loads. Every
 * path must return without crashing, leaking or running away (aliases and
 * merges are bounded by the loader). */
#include <stdint.h>
#include <stdlib.h>
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_config_errors_t errs = { NULL, 0 };
    tg_config_t *c = tg_config_load_string("fuzz.yaml", (const char *)data, size, &errs);
    if (c != NULL) {
        free(tg_config_to_json(c));
        tg_config_release(c);
    }
    tg_config_errors_free(&errs);
    return 0;
}
