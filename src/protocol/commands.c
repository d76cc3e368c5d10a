/*
 * Many read commands in one round trip per node, their replies as JSON:
 * what `jobq status`, `jobq metrics` and `jobq web` count a hundred queues
 * with (see redis.h, jobq_redis_commands_json).
 */
#include <stdlib.h>
#include <string.h>

#include "protocol/redis.h"
#include "protocol/redis_internal.h"

int jobq_redis_commands_json(jobq_redis *r, size_t n, const int *argcs, const char *const *const *argvs,
                             json_t **out, jobq_err *err) {
    if (n == 0) return 0;
    jobq_cmd *cmds = calloc(n, sizeof *cmds);
    redisReply **replies = calloc(n, sizeof *replies);
    int rc = -1;
    if (!cmds || !replies) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        cmds[i] = (jobq_cmd){.route = argcs[i] > 1 ? argvs[i][1] : NULL, .argc = argcs[i], .argv = (const char **)argvs[i]};
    if (jobq_redis_pipeline(r, err, argvs[0][0], cmds, n, 0, replies) != 0) goto done;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *x = replies[i];
        out[i] = x->type == REDIS_REPLY_ERROR ? json_pack("{s:s#}", "error", x->str, (int)x->len) : jobq_reply_to_json(x);
        if (!out[i]) rc = -1;
        freeReplyObject(replies[i]);
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) json_decref(out[i]);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    }
done:
    free(cmds);
    free(replies);
    return rc;
}
