/*
 * Lua sources of jobq's server-side scripts. They only touch keys passed in
 * KEYS, except PROMOTE and RECLAIM, which build queue keys from a prefix
 * (single-node Redis; no cluster slots). Loaded by queue.c on every connect.
 */
#include "scripts.h"

/* Take up to ARGV[1] jobs, highest-priority queue first, moving each into
 * its in-flight list in the same step so a taken job is never only in memory.
 * Never more than a fair share of what waits (its length divided by ARGV[3],
 * the workers serving it, at least one), so a batch cannot starve idle
 * workers; and nothing from a lower queue while a higher one still has jobs.
 * Returns {jobs still waiting in these queues, count taken per queue...,
 * payloads...}. */
static const char take_lua[] =
    "local max = tonumber(ARGV[1])\n"
    "local n = tonumber(ARGV[2])\n"
    "local workers = tonumber(ARGV[3])\n"
    "local counts, out, left = {}, {}, 0\n"
    "for i = 1, n do\n"
    "  local len = redis.call('LLEN', KEYS[n + i])\n"
    "  local got = 0\n"
    "  if max > 0 and len > 0 then\n"
    "    local want = math.min(max, math.max(1, math.floor(len / workers)))\n"
    "    local items = redis.call('LPOP', KEYS[n + i], want)\n"
    "    redis.call('RPUSH', KEYS[i], unpack(items))\n"
    "    for _, v in ipairs(items) do out[#out + 1] = v end\n"
    "    got = #items\n"
    "    max = len > got and 0 or max - got\n"
    "  end\n"
    "  counts[i] = got\n"
    "  left = left + len - got\n"
    "end\n"
    "for i = n, 1, -1 do table.insert(out, 1, counts[i]) end\n"
    "table.insert(out, 1, left)\n"
    "return out\n";

static const char requeue_lua[] =
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end\n"
    "return n\n";

/* Members are job payloads; the target queue is _jobq.queue (retries), else
 * the job's "queue" field, else "default". Also expires cancel requests older
 * than ARGV[4] and returns the pending ones, so one round trip per tick
 * serves both. */
static const char promote_lua[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, "
    "tonumber(ARGV[3]))\n"
    "local moved = 0\n"
    "for _, m in ipairs(due) do\n"
    "  if redis.call('ZREM', KEYS[1], m) == 1 then\n"
    "    local q = 'default'\n"
    "    local ok, job = pcall(cjson.decode, m)\n"
    "    if ok and type(job) == 'table' then\n"
    "      if type(job['queue']) == 'string' and job['queue'] ~= '' then q = job['queue'] end\n"
    "      local meta = job['_jobq']\n"
    "      if type(meta) == 'table' and type(meta['queue']) == 'string' then q = meta['queue'] end\n"
    "    end\n"
    "    redis.call('RPUSH', ARGV[2] .. q, m)\n"
    "    moved = moved + 1\n"
    "  end\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])\n"
    "local out = {moved, nxt[2] or false}\n"
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, 99)) do out[#out + 1] = id end\n"
    "return out\n";

/* The in-flight hash maps each in-flight list of the daemon to its queue. */
static const char reclaim_lua[] =
    "if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end\n"
    "local pairs_ = redis.call('HGETALL', KEYS[2])\n"
    "local n = 0\n"
    "for i = 1, #pairs_, 2 do\n"
    "  while redis.call('LMOVE', pairs_[i], pairs_[i + 1], 'RIGHT', 'LEFT') do n = n + 1 end\n"
    "end\n"
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "return n\n";

static const char *const sources[JOBQ_SCRIPT_COUNT] = {
    [JOBQ_SCRIPT_TAKE] = take_lua,
    [JOBQ_SCRIPT_REQUEUE] = requeue_lua,
    [JOBQ_SCRIPT_PROMOTE] = promote_lua,
    [JOBQ_SCRIPT_RECLAIM] = reclaim_lua,
};

static const char *const names[JOBQ_SCRIPT_COUNT] = {
    [JOBQ_SCRIPT_TAKE] = "take",
    [JOBQ_SCRIPT_REQUEUE] = "requeue",
    [JOBQ_SCRIPT_PROMOTE] = "promote",
    [JOBQ_SCRIPT_RECLAIM] = "reclaim",
};

const char *jobq_script_source(enum jobq_script s) {
    return s >= 0 && s < JOBQ_SCRIPT_COUNT ? sources[s] : "";
}

const char *jobq_script_name(enum jobq_script s) {
    return s >= 0 && s < JOBQ_SCRIPT_COUNT ? names[s] : "?";
}
