/* tollgate: command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "filters/filter.h"
#include "runtime/runtime.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tollgate [-c FILE] [-t] [--version] [--help]\n"
            "  -c, --config FILE  configuration file (default ./tollgate.yaml)\n"
            "  -t, --test         check the configuration, print every error, exit 0/1\n"
            "  -v, --version      print the version\n"
            "  -h, --help         this text\n"
            "signals: SIGHUP reloads the configuration; SIGTERM/SIGQUIT drain for\n"
            "server.shutdown_grace then exit; SIGINT stops at once\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' }, { "test", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'v' },       { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = "tollgate.yaml";
    int check_only = 0, c;
    while ((c = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 't': check_only = 1; break;
        case 'v': printf("tollgate %s\n", TG_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    tg_config_errors_t errs = { 0 };
    tg_config_t *cfg = tg_config_load(path, &errs);
    if (cfg == NULL) {
        tg_config_errors_print(&errs, stderr);
        tg_config_errors_free(&errs);
        return 1;
    }
    tg_config_errors_free(&errs);
    if (check_only) {
        /* Policies compile per route (keys, schemas, ...): their errors count too. */
        tg_filter_states_t fs;
        char err[512];
        if (tg_filter_states_build(&fs, cfg, err, sizeof err) < 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            tg_config_release(cfg);
            return 1;
        }
        tg_filter_states_free(&fs);
        printf("%s: configuration ok (%zu routes, %zu upstreams)\n", path, cfg->nroutes, cfg->nupstreams);
        tg_config_release(cfg);
        return 0;
    }
    return tg_runtime_run(cfg);
}
