/*
 * jobq pause and jobq resume: set or clear a queue's pause flag
 * (protocol/flow.h), which every daemon's take obeys; running jobs finish.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/job.h"
#include "protocol/flow.h"

static const char pause_usage[] =
    "Usage: jobq pause QUEUE...\n"
    "Stop every daemon from taking jobs of each QUEUE (<prefix>:{QUEUE}:paused);\n"
    "jobs already running finish, waiting ones stay queued, producers can\n"
    "still push. 'jobq resume QUEUE' undoes it; 'jobq status' shows it.\n";

static const char resume_usage[] =
    "Usage: jobq resume QUEUE...\n"
    "Let the daemons take jobs of each paused QUEUE again (within about 0.25 s).\n";

/* Pause (pause: true) or resume each queue of argv. */
static int run(jobq_cli *c, int argc, char **argv, bool pause) {
    static const jobq_cli_opt opts[] = {JOBQ_CLI_OPT_END};
    const char *queues[JOBQ_MAX_QUEUES] = {0};
    int nargs;
    const jobq_cli_spec spec = {pause ? pause_usage : resume_usage, opts, NULL, queues, JOBQ_MAX_QUEUES, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (nargs == 0) return jobq_cli_error("%s: missing QUEUE (see 'jobq %s --help')", c->cmd, c->cmd);
    for (int i = 0; i < nargs; i++)
        if (!jobq_key_valid_queue(queues[i]))
            return jobq_cli_error("%s: bad queue name '%s': use 1 to 64 of A-Z a-z 0-9 _ . : -", c->cmd, queues[i]);
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    char host[256] = "?";
    gethostname(host, sizeof host);
    json_t *info = json_pack("{s:f, s:s, s:i}", "paused_at", jobq_now(), "host", host, "pid", (int)getpid());
    char *text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    if (!text) return jobq_cli_error("out of memory");
    int status = JOBQ_CLI_OK;
    for (int i = 0; i < nargs && status == JOBQ_CLI_OK; i++) {
        jobq_err err;
        int rc = pause ? jobq_flow_pause(c->r, c->key_prefix, queues[i], text, &err)
                       : jobq_flow_resume(c->r, c->key_prefix, queues[i], &err);
        if (rc < 0) {
            status = JOBQ_CLI_USAGE;
            jobq_cli_redis_error(c, &err);
            break;
        }
        printf("queue ");
        jobq_cli_put(stdout, queues[i]);
        if (pause) printf(rc ? " paused: no daemon takes its jobs until 'jobq resume'\n" : " was paused already\n");
        else printf(rc ? " resumed\n" : " was not paused\n");
    }
    free(text);
    return status;
}

int jobq_cli_pause(jobq_cli *c, int argc, char **argv) { return run(c, argc, argv, true); }

int jobq_cli_resume(jobq_cli *c, int argc, char **argv) { return run(c, argc, argv, false); }
