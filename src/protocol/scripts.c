/*
 * Lua sources of jobq's server-side scripts and of its FUNCTION library.
 * Shared pieces (time, type checks, the queued event, enqueueing) are
 * written once as Lua preludes and prepended where they are used.
 * Conventions: times are Redis server time (TIME), lease scores in
 * milliseconds, due times in seconds; an error reply is only ever returned
 * before the script's first write.
 */
#include "protocol/scripts.h"

#include "protocol/keys.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* Version of the FUNCTION library; bumped on every change of its source. */
#define FUNCTIONS_VERSION 5

/* Helpers every script may use. */
#define LUA_COMMON \
    "local function now_ms()\n" \
    "  local t = redis.call('TIME')\n" \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
    "end\n" \
    "local function now_s()\n" \
    "  local t = redis.call('TIME')\n" \
    "  return tonumber(t[1]) + tonumber(t[2]) / 1e6\n" \
    "end\n" \
    "-- Is key absent or of Redis type t?\n" \
    "local function key_is(key, t)\n" \
    "  local k = redis.call('TYPE', key)['ok']\n" \
    "  return k == 'none' or k == t\n" \
    "end\n" \
    "local function wrongtype(key, t)\n" \
    "  return redis.error_reply('WRONGTYPE jobq: ' .. key .. ' is a ' ..\n" \
    "    redis.call('TYPE', key)['ok'] .. ', not a ' .. t)\n" \
    "end\n" \
    "-- PUBLISH, or SPUBLISH on a cluster (per-queue sharded channels).\n" \
    "local function publish(cmd, channel, message)\n" \
    "  redis.call(cmd == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', channel, message)\n" \
    "end\n" \
    "-- Does anyone listen to channel here: a subscriber of it, or (PUBLISH)\n" \
    "-- of any pattern? A batch's events that nobody can hear are not sent.\n" \
    "local function heard(cmd, channel)\n" \
    "  if cmd == 'SPUBLISH' then return redis.call('PUBSUB', 'SHARDNUMSUB', channel)[2] > 0 end\n" \
    "  return redis.call('PUBSUB', 'NUMSUB', channel)[2] > 0 or redis.call('PUBSUB', 'NUMPAT') > 0\n" \
    "end\n" \
    "-- The queued event, the one builder of it.\n" \
    "local function queued_event(id, queue, handler, time, due)\n" \
    "  local e = {event = 'queued', id = id, queue = queue, handler = handler, time = time}\n" \
    "  if due then e.due_at = due end\n" \
    "  return cjson.encode(e)\n" \
    "end\n"

/* Enqueueing, shared by JOBQ_SCRIPT_ENQUEUE and the FUNCTION library.
 * enqueue(k, json, opts) pushes one job on queue key k.queue (or adds it to
 * k.scheduled, due at opts.due) and returns its id, or nil and why. The
 * producer's text is pushed as given, with "id", "enqueued_at" and, for a
 * unique job, "_jobq":{"unique":true} spliced in front when missing; only a
 * job whose id is JSON null is re-encoded by cjson. A unique job holds its
 * id in k.unique (a sorted set scored by expiry) until its final outcome
 * is committed, or result_ttl seconds (the job's, else 86400) at most. */
#define LUA_ENQUEUE \
    "local WS = '^[ \\t\\r\\n]*{'\n" \
    "-- The prefix and queue of a queue key PREFIX:{QUEUE}:queue, or nil.\n" \
    "local function queue_of(key)\n" \
    "  local prefix, queue = string.match(key, '^(.+):{([%w_.:%-]+)}:queue$')\n" \
    "  if not prefix or #queue > 64 then return nil end\n" \
    "  return prefix, queue\n" \
    "end\n" \
    "-- The decoded job, or nil and why.\n" \
    "local function parse(json)\n" \
    "  local ok, job = pcall(cjson.decode, json)\n" \
    "  if not ok then return nil, 'the job is not valid JSON: ' .. tostring(job) end\n" \
    "  if type(job) ~= 'table' or not string.find(json, WS) then\n" \
    "    return nil, 'the job must be a JSON object'\n" \
    "  end\n" \
    "  if type(job.handler) ~= 'string' or job.handler == '' or string.find(job.handler, '%c') then\n" \
    "    return nil, \"the job needs a 'handler' field, a non-empty string without control characters\"\n" \
    "  end\n" \
    "  local id = job.id\n" \
    "  if id ~= nil and id ~= cjson.null and (type(id) ~= 'string' or id == '' or #id > 128 or\n" \
    "      string.find(id, '%c')) then\n" \
    "    return nil, \"'id' must be a string of 1 to 128 bytes without control characters\"\n" \
    "  end\n" \
    "  if job._jobq ~= nil then return nil, \"'_jobq' is reserved for jobq's own bookkeeping\" end\n" \
    "  return job\n" \
    "end\n" \
    "local function complete(json, job, id, stamp, unique)\n" \
    "  if job.id == cjson.null then\n" \
    "    job.id = id\n" \
    "    if job.enqueued_at == nil then job.enqueued_at = tonumber(stamp) end\n" \
    "    if unique then job._jobq = {unique = true} end\n" \
    "    return cjson.encode(job)\n" \
    "  end\n" \
    "  local add = {}\n" \
    "  if job.id == nil then add[#add + 1] = '\"id\":' .. cjson.encode(id) end\n" \
    "  if job.enqueued_at == nil then add[#add + 1] = '\"enqueued_at\":' .. stamp end\n" \
    "  if unique then add[#add + 1] = '\"_jobq\":{\"unique\":true}' end\n" \
    "  if #add == 0 then return json end\n" \
    "  local _, e = string.find(json, '^[ \\t\\r\\n]*{[ \\t\\r\\n]*')\n" \
    "  local rest = string.sub(json, e + 1)\n" \
    "  local sep = ','\n" \
    "  if string.sub(rest, 1, 1) == '}' then sep = '' end\n" \
    "  return '{' .. table.concat(add, ',') .. sep .. rest\n" \
    "end\n" \
    "local function enqueue(k, json, opts)\n" \
    "  local prefix, queue = queue_of(k.queue)\n" \
    "  if not prefix then\n" \
    "    return nil, \"the key must be PREFIX:{QUEUE}:queue with QUEUE 1 to 64 of \" ..\n" \
    "      \"A-Z a-z 0-9 _ . : -, not '\" .. k.queue .. \"'\"\n" \
    "  end\n" \
    "  local job, bad = parse(json)\n" \
    "  if not job then return nil, bad end\n" \
    "  local target = opts.due and k.scheduled or k.queue\n" \
    "  if not key_is(target, opts.due and 'zset' or 'list') then\n" \
    "    return nil, target .. ' is a ' .. redis.call('TYPE', target)['ok'] .. ', not a ' ..\n" \
    "      (opts.due and 'zset' or 'list')\n" \
    "  end\n" \
    "  local id = job.id\n" \
    "  if opts.unique and type(id) ~= 'string' then return nil, \"a unique job needs its own 'id'\" end\n" \
    "  local time = redis.call('TIME')\n" \
    "  local now = tonumber(time[1]) + tonumber(time[2]) / 1e6\n" \
    "  local stamp = string.format('%.6f', now)\n" \
    "  if type(id) ~= 'string' then\n" \
    "    id = string.format('%08x%05x%x-', tonumber(time[1]), tonumber(time[2]),\n" \
    "      redis.call('INCR', k.ids)) .. queue\n" \
    "  end\n" \
    "  if opts.unique then\n" \
    "    if not key_is(k.unique, 'zset') then return nil, k.unique .. ' is not a zset' end\n" \
    "    redis.call('ZREMRANGEBYSCORE', k.unique, '-inf', now)\n" \
    "    if redis.call('ZSCORE', k.unique, id) then return id, nil, true end\n" \
    "    local ttl = job.result_ttl\n" \
    "    if type(ttl) ~= 'number' or ttl < 1 then ttl = 86400 end\n" \
    "    redis.call('ZADD', k.unique, now + ttl, id)\n" \
    "  end\n" \
    "  local payload = complete(json, job, id, stamp, opts.unique)\n" \
    "  if opts.due then\n" \
    "    redis.call('ZADD', k.scheduled, opts.due, payload)\n" \
    "  else\n" \
    "    redis.call('RPUSH', k.queue, payload)\n" \
    "  end\n" \
    "  publish(opts.publish, opts.channel or (prefix .. ':events'),\n" \
    "    queued_event(id, queue, job.handler, now, opts.due))\n" \
    "  return id\n" \
    "end\n"

/* What the commit does for a job that ended for good (ok, failed, dead or
 * cancelled): release the parked jobs of its queue that wait for it, and
 * count it in its batch, queueing the batch's callback once every job of
 * the batch is counted. Keys of another type are left alone (a commit is
 * never refused for them). */
#define LUA_ENDED \
    "-- The parked jobs of this queue waiting for a job (waiters: their set)\n" \
    "-- go back on the queue; their worker checks every dependency again.\n" \
    "local function release_waiters(waiters, parked, queue)\n" \
    "  if redis.call('EXISTS', waiters) == 0 then return end\n" \
    "  if not key_is(waiters, 'set') or not key_is(parked, 'hash') or not key_is(queue, 'list') then return end\n" \
    "  for _, id in ipairs(redis.call('SMEMBERS', waiters)) do\n" \
    "    local payload = redis.call('HGET', parked, id)\n" \
    "    if payload then\n" \
    "      redis.call('HDEL', parked, id)\n" \
    "      redis.call('RPUSH', queue, payload)\n" \
    "    end\n" \
    "  end\n" \
    "  redis.call('DEL', waiters)\n" \
    "end\n" \
    "-- Count job id in its batch (once: the done:<id> field); after the last\n" \
    "-- one, queue the callback with the counts in its args.batch, once.\n" \
    "local function batch_ended(batch, id, ok, queue, channel, cmd)\n" \
    "  if redis.call('TYPE', batch)['ok'] ~= 'hash' then return end\n" \
    "  if redis.call('HSETNX', batch, 'done:' .. id, ok and 1 or 0) == 0 then return end\n" \
    "  redis.call('HINCRBY', batch, ok and 'ok' or 'failed', 1)\n" \
    "  local b = redis.call('HMGET', batch, 'total', 'ok', 'failed', 'callback_at', 'cb_id', 'cb_head',\n" \
    "    'cb_args', 'cb_handler', 'queue', 'id', 'ttl')\n" \
    "  local total, nok, nfailed = tonumber(b[1]), tonumber(b[2]) or 0, tonumber(b[3]) or 0\n" \
    "  if b[4] or not total or not b[5] or nok + nfailed < total or not key_is(queue, 'list') then return end\n" \
    "  local now = now_s()\n" \
    "  local args = '{\"batch\":{\"id\":' .. cjson.encode(b[10]) .. ',\"total\":' .. total .. ',\"ok\":' ..\n" \
    "    nok .. ',\"failed\":' .. nfailed .. '}' .. (b[7] ~= '' and (',' .. b[7]) or '') .. '}'\n" \
    "  redis.call('RPUSH', queue, '{\"id\":' .. cjson.encode(b[5]) .. ',' .. b[6] .. ',\"args\":' .. args ..\n" \
    "    ',\"enqueued_at\":' .. string.format('%.6f', now) .. '}')\n" \
    "  redis.call('HSET', batch, 'callback_at', string.format('%.6f', now))\n" \
    "  redis.call('EXPIRE', batch, tonumber(b[11]) or 86400)\n" \
    "  publish(cmd, channel, queued_event(b[5], b[9], b[8], now))\n" \
    "end\n"

/* Take up to ARGV[1] jobs, moving each into this worker's in-flight list in
 * the same step so a taken job is never only in memory; never more than a
 * fair share of what waits (its length divided by ARGV[2], the workers
 * serving it, at least one), so a batch cannot starve idle workers. Refused
 * ({-1}) when the daemon's lease has lapsed: it may have been declared dead
 * and its jobs handed to others. Flow control, over every daemon: nothing
 * while the queue is paused (KEYS[4] exists); with a concurrency limit
 * ARGV[4] > 0, no more jobs in flight than that, counted in KEYS[5] (in-flight
 * list -> its length, kept by every script that moves jobs in or out of a
 * list; this list's own entry is set from its length here); with a rate
 * limit ARGV[5] > 0, no more takes than that in any ARGV[6] ms, each take
 * a member of KEYS[6] scored by Redis time in microseconds. Returns {jobs
 * left, ms the lease still runs, wait}, with jobs taken {..., heard,
 * jobs...}: wait is 0, -1 while paused, or the ms after which a take may
 * succeed again when a limit is reached; heard is 1 when someone listens
 * to the events channel ARGV[7] (published with ARGV[8]), else 0: the
 * worker then sends no "started" events for these jobs. */
static const char take_lua[] = LUA_COMMON
    "local lease, now = redis.call('ZSCORE', KEYS[3], ARGV[3]), now_ms()\n"
    "if not lease or tonumber(lease) < now then return {-1} end\n"
    "local left = tonumber(lease) - now\n"
    "if redis.call('EXISTS', KEYS[4]) == 1 then return {0, left, -1} end\n"
    "local len = redis.pcall('LLEN', KEYS[1])\n"
    "if type(len) == 'table' then return wrongtype(KEYS[1], 'list') end\n"
    "if len == 0 then return {0, left, 0} end\n"
    "if not key_is(KEYS[2], 'list') then return wrongtype(KEYS[2], 'list') end\n"
    "local want = math.min(tonumber(ARGV[1]), math.max(1, math.floor(len / tonumber(ARGV[2]))))\n"
    "local conc, rate, period = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) * 1000\n"
    "local held, own, us, stamp\n"
    "if conc > 0 then\n"
    "  if not key_is(KEYS[5], 'hash') then return wrongtype(KEYS[5], 'hash') end\n"
    "  held = redis.call('LLEN', KEYS[2])\n"
    "  local total, entries = held, redis.call('HGETALL', KEYS[5])\n"
    "  for i = 1, #entries, 2 do\n"
    "    if entries[i] == KEYS[2] then own = tonumber(entries[i + 1])\n"
    "    else total = total + (tonumber(entries[i + 1]) or 0) end\n"
    "  end\n"
    "  if total >= conc then\n"
    "    if own and own ~= held then\n"
    "      if held > 0 then redis.call('HSET', KEYS[5], KEYS[2], held) else redis.call('HDEL', KEYS[5], KEYS[2]) end\n"
    "    end\n"
    "    return {len, left, 50}\n"
    "  end\n"
    "  want = math.min(want, conc - total)\n"
    "end\n"
    "if rate > 0 then\n"
    "  if not key_is(KEYS[6], 'zset') then return wrongtype(KEYS[6], 'zset') end\n"
    "  local t = redis.call('TIME')\n"
    "  -- Microseconds exceed Lua's %.14g: numbers go to Redis as %.0f strings.\n"
    "  us = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "  stamp = string.format('%.0f', us)\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', string.format('%.0f', us - period))\n"
    "  local count = redis.call('ZCARD', KEYS[6])\n"
    "  if count >= rate then\n"
    "    local oldest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')\n"
    "    return {len, left, math.max(1, math.ceil((tonumber(oldest[2]) + period - us) / 1000))}\n"
    "  end\n"
    "  want = math.min(want, rate - count)\n"
    "end\n"
    "local items = redis.call('LPOP', KEYS[1], want)\n"
    "redis.call('RPUSH', KEYS[2], unpack(items))\n"
    "if conc > 0 then redis.call('HSET', KEYS[5], KEYS[2], held + #items) end\n"
    "if rate > 0 then\n"
    "  local starts = {}\n"
    "  for i = 1, #items do starts[2 * i - 1] = stamp; starts[2 * i] = stamp .. '.' .. i end\n"
    "  redis.call('ZADD', KEYS[6], unpack(starts))\n"
    "  redis.call('PEXPIRE', KEYS[6], math.ceil(period / 1000) + 1000)\n"
    "end\n"
    "local out = {len - #items, left, 0, heard(ARGV[8], ARGV[7]) and 1 or 0}\n"
    "for i = 1, #items do out[i + 4] = items[i] end\n"
    "return out\n";

/* Pipelined right after a BLMOVE into the in-flight list: the lease is
 * checked once the blocking move returned ({ms it still runs, heard}:
 * heard as in the take script, for the events channel ARGV[2] published
 * with ARGV[3]), and a fenced daemon's worker hands what it got straight
 * back (-1). A queue paused while the worker was blocked gets back at its
 * head what the move brought (-2). */
static const char confirm_lua[] = LUA_COMMON
    "local lease, now = redis.call('ZSCORE', KEYS[1], ARGV[1]), now_ms()\n"
    "if lease and tonumber(lease) >= now then\n"
    "  if redis.call('EXISTS', KEYS[4]) == 0 then\n"
    "    return {tonumber(lease) - now, heard(ARGV[3], ARGV[2]) and 1 or 0}\n"
    "  end\n"
    "  if not key_is(KEYS[3], 'list') then return wrongtype(KEYS[3], 'list') end\n"
    "  redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT')\n"
    "  return -2\n"
    "end\n"
    "if not key_is(KEYS[3], 'list') then return wrongtype(KEYS[3], 'list') end\n"
    "while redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT') do end\n"
    "return -1\n";

/* Everything back to the head of the queue in order; with ARGV[1] == '1'
 * the list is also forgotten from the holders, in the same step, so it is
 * never forgotten while it still holds jobs (a queue key of another type
 * only matters when there is something to put back). Its concurrency
 * count (KEYS[4]) goes with its jobs. */
static const char requeue_lua[] = LUA_COMMON
    "if redis.call('LLEN', KEYS[1]) > 0 and not key_is(KEYS[2], 'list') then\n"
    "  return wrongtype(KEYS[2], 'list')\n"
    "end\n"
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end\n"
    "if ARGV[1] == '1' then redis.call('HDEL', KEYS[3], KEYS[1]) end\n"
    "redis.pcall('HDEL', KEYS[4], KEYS[1])\n"
    "return n\n";

/* Record the outcomes of a batch (the results were written just before).
 * ARGV: events channel, its publish command, n, then per job 7 from index
 * 4: payload, flags (f: counts as processed, x: as failed, r: retried, d:
 * rejected, c: cancelled, e: ended for good, k: ended ok, b: counts in a
 * batch), dead entry, retry due time, retry payload, event, id whose unique
 * hold ends ('' for none); then the n job ids; then the latency histogram
 * increments of the batch in pairs (field, increment; a field ending in
 * |sum takes a decimal), applied when every job of the batch was recorded,
 * and skipped when the histo key holds another type (metrics never block
 * jobs). KEYS: in-flight, dead, scheduled, stats, unique, histo, queue,
 * parked, running, then per job the set of the jobs waiting for it and its
 * batch (LUA_ENDED). A job is recorded only while it is still in the
 * in-flight list: a commit that is sent again after a lost reply, or for a
 * job another daemon reclaimed, writes nothing twice; those jobs are
 * returned. The first write is a no-op HSETNX of the stats hash, which
 * Redis refuses past maxmemory, as it refuses a SET: the results that ride
 * in the same pipeline just before (queue.c) were then refused too, and no
 * job is recorded without its result; once a script has written, Redis
 * lets it finish, so an outcome is never half done. Then the removal from
 * the in-flight list (one LTRIM when the batch is its head, in order, else
 * an LREM per job). Events go out only when someone listens
 * (heard), and waiters are looked for with one EXISTS per batch. Counters
 * are tallied per distinct flags string, one HINCRBY per counter. Last, the
 * in-flight list's concurrency count (KEYS[9]) is set to what it still
 * holds, so a finished job frees its slot in the same step. */
static const char commit_lua[] = LUA_COMMON LUA_ENDED
    "local n = tonumber(ARGV[3])\n"
    "local need_dead, need_sched, need_unique = false, false, false\n"
    "for i = 0, n - 1 do\n"
    "  local b = 4 + i * 7\n"
    "  if ARGV[b + 2] ~= '' then need_dead = true end\n"
    "  if ARGV[b + 4] ~= '' then need_sched = true end\n"
    "  if ARGV[b + 6] ~= '' then need_unique = true end\n"
    "end\n"
    "if need_dead and not key_is(KEYS[2], 'list') then return wrongtype(KEYS[2], 'list') end\n"
    "if need_sched and not key_is(KEYS[3], 'zset') then return wrongtype(KEYS[3], 'zset') end\n"
    "if not key_is(KEYS[4], 'hash') then return wrongtype(KEYS[4], 'hash') end\n"
    "if need_unique and not key_is(KEYS[5], 'zset') then return wrongtype(KEYS[5], 'zset') end\n"
    "local tally, skipped = {}, {}\n"
    "local loud = heard(ARGV[2], ARGV[1])\n"
    "-- One EXISTS for the whole batch: are any jobs waiting for these?\n"
    "local waiters = {}\n"
    "for i = 0, n - 1 do waiters[i + 1] = KEYS[10 + 2 * i] end\n"
    "local awaited = redis.call('EXISTS', unpack(waiters)) > 0\n"
    "-- The usual case: the batch is the head of the in-flight list, in\n"
    "-- order; one LTRIM then removes it all.\n"
    "redis.call('HSETNX', KEYS[4], '" JOBQ_STATS_PROCESSED "', 0)\n"
    "local head = redis.call('LRANGE', KEYS[1], 0, n - 1)\n"
    "local in_order = #head == n\n"
    "for i = 0, n - 1 do\n"
    "  if not in_order then break end\n"
    "  in_order = head[i + 1] == ARGV[4 + i * 7]\n"
    "end\n"
    "if in_order then redis.call('LTRIM', KEYS[1], n, -1) end\n"
    "for i = 0, n - 1 do\n"
    "  local b = 4 + i * 7\n"
    "  if in_order or redis.call('LREM', KEYS[1], 1, ARGV[b]) == 1 then\n"
    "    if ARGV[b + 2] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[b + 2]) end\n"
    "    if ARGV[b + 4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[b + 3], ARGV[b + 4]) end\n"
    "    if ARGV[b + 6] ~= '' then redis.call('ZREM', KEYS[5], ARGV[b + 6]) end\n"
    "    if loud and ARGV[b + 5] ~= '' then publish(ARGV[2], ARGV[1], ARGV[b + 5]) end\n"
    "    local f = ARGV[b + 1]\n"
    "    tally[f] = (tally[f] or 0) + 1\n"
    "    if string.find(f, 'e', 1, true) then\n"
    "      if awaited then release_waiters(KEYS[10 + 2 * i], KEYS[8], KEYS[7]) end\n"
    "      if string.find(f, 'b', 1, true) then\n"
    "        batch_ended(KEYS[11 + 2 * i], ARGV[4 + 7 * n + i], string.find(f, 'k', 1, true), KEYS[7],\n"
    "          ARGV[1], ARGV[2])\n"
    "      end\n"
    "    end\n"
    "  else\n"
    "    skipped[#skipped + 1] = i + 1\n"
    "  end\n"
    "end\n"
    "local counters = {f = '" JOBQ_STATS_PROCESSED "', x = '" JOBQ_STATS_FAILED "', r = '" JOBQ_STATS_RETRIED "',\n"
    "  d = '" JOBQ_STATS_REJECTED "', c = '" JOBQ_STATS_CANCELLED "'}\n"
    "local sums = {}\n"
    "for f, count in pairs(tally) do\n"
    "  for l in string.gmatch(f, '.') do\n"
    "    if counters[l] then sums[l] = (sums[l] or 0) + count end\n"
    "  end\n"
    "end\n"
    "for l, count in pairs(sums) do redis.call('HINCRBY', KEYS[4], counters[l], count) end\n"
    "local h = 4 + n * 8\n"
    "if #skipped == 0 and #ARGV > h and key_is(KEYS[6], 'hash') then\n"
    "  for i = h, #ARGV - 1, 2 do\n"
    "    if string.sub(ARGV[i], -4) == '|sum' then redis.call('HINCRBYFLOAT', KEYS[6], ARGV[i], ARGV[i + 1])\n"
    "    else redis.call('HINCRBY', KEYS[6], ARGV[i], ARGV[i + 1]) end\n"
    "  end\n"
    "end\n"
    "local held = redis.call('LLEN', KEYS[1])\n"
    "if held > 0 then redis.pcall('HSET', KEYS[9], KEYS[1], held) else redis.pcall('HDEL', KEYS[9], KEYS[1]) end\n"
    "return skipped\n";

/* Park a job that waits for others: move payload ARGV[1] (id ARGV[2]) from
 * the in-flight list KEYS[1] to the parked hash KEYS[2] and add its id to
 * the waiters sets KEYS[3..] of the jobs it waits for. 1, or 0 when it was
 * no longer in flight. */
static const char park_lua[] = LUA_COMMON
    "if not key_is(KEYS[2], 'hash') then return wrongtype(KEYS[2], 'hash') end\n"
    "for i = 3, #KEYS do\n"
    "  if not key_is(KEYS[i], 'set') then return wrongtype(KEYS[i], 'set') end\n"
    "end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])\n"
    "for i = 3, #KEYS do redis.call('SADD', KEYS[i], ARGV[2]) end\n"
    "return 1\n";

/* Put parked job ARGV[1] of hash KEYS[1] back on queue KEYS[2]: 1, or 0
 * when it is not parked (released already). */
static const char release_lua[] = LUA_COMMON
    "local payload = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not payload then return 0 end\n"
    "if not key_is(KEYS[2], 'list') then return wrongtype(KEYS[2], 'list') end\n"
    "redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "redis.call('RPUSH', KEYS[2], payload)\n"
    "return 1\n";

/* Move due scheduled jobs (score <= now) to the queue, at most ARGV[1];
 * when the queue key is not a list nothing moves and its type is returned
 * (the supervisor then buries the due jobs with BURY). Also drops cancel
 * requests older than 60 s and returns the pending ones, so one round trip
 * per queue and tick serves both. */
static const char promote_lua[] = LUA_COMMON
    "local now = now_s()\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "local moved, bad = 0, false\n"
    "if #due > 0 then\n"
    "  if key_is(KEYS[2], 'list') then\n"
    "    redis.call('RPUSH', KEYS[2], unpack(due))\n"
    "    redis.call('ZREM', KEYS[1], unpack(due))\n"
    "    moved = #due\n"
    "  else\n"
    "    bad = redis.call('TYPE', KEYS[2])['ok']\n"
    "  end\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "local out = {moved, nxt[2] or false, bad}\n"
    "if key_is(KEYS[3], 'zset') then\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60)\n"
    "  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, 99)) do out[#out + 1] = id end\n"
    "end\n"
    "return out\n";

/* Move scheduled members that cannot be delivered to the dead list, each
 * with its entry (ARGV pairs: member, entry); a member no longer scheduled
 * is skipped. */
static const char bury_lua[] = LUA_COMMON
    "if not key_is(KEYS[2], 'list') then return wrongtype(KEYS[2], 'list') end\n"
    "local n = 0\n"
    "for i = 1, #ARGV, 2 do\n"
    "  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then\n"
    "    redis.call('LPUSH', KEYS[2], ARGV[i + 1])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* Renew daemon ARGV[1]'s lease on the queue for ARGV[2] ms of Redis time and
 * (re-)register its in-flight lists ARGV[3..]. Returns 0 when it had no
 * lease (its first, or it was declared dead and reclaimed), 2 when the old
 * one had lapsed, 1 otherwise. */
static const char lease_lua[] = LUA_COMMON
    "if not key_is(KEYS[2], 'hash') then return wrongtype(KEYS[2], 'hash') end\n"
    "local now = now_ms()\n"
    "local old = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
    "for i = 3, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end\n"
    "if not old then return 0 end\n"
    "if tonumber(old) < now then return 2 end\n"
    "return 1\n";

/* Put back the jobs of in-flight lists KEYS[5..] whose daemon's lease has
 * lapsed (or who is forced: a dead process on the caller's own host),
 * forget those lists and leases. ARGV: the caller (spared), the number of
 * forced daemons, them, then the watched daemons (gone by heartbeat) to
 * report on. Each list is re-checked here: it is only touched while the
 * holders still give it to such a daemon. Lapsed leases holding nothing are
 * dropped too, so a stalled daemon that comes back finds out (LEASE returns
 * 0). The queue key's type matters only when there is something to put
 * back; their concurrency counts (KEYS[4]) go with the lists. Returns
 * {moved, number dropped, daemons dropped..., watched daemons whose lease
 * still runs...}. */
static const char reclaim_lua[] = LUA_COMMON
    "local now = now_ms()\n"
    "local nforced = tonumber(ARGV[2])\n"
    "local forced, gone = {}, {}\n"
    "for i = 3, 2 + nforced do forced[ARGV[i]] = true end\n"
    "local function lapsed(d)\n"
    "  if d == ARGV[1] then return false end\n"
    "  if forced[d] then return true end\n"
    "  local lease = redis.call('ZSCORE', KEYS[1], d)\n"
    "  return not lease or tonumber(lease) < now\n"
    "end\n"
    "local victims, any = {}, false\n"
    "for i = 5, #KEYS do\n"
    "  local d = redis.call('HGET', KEYS[2], KEYS[i])\n"
    "  if d and lapsed(d) then\n"
    "    victims[#victims + 1] = {KEYS[i], d}\n"
    "    if redis.call('LLEN', KEYS[i]) > 0 then any = true end\n"
    "  end\n"
    "end\n"
    "if any and not key_is(KEYS[3], 'list') then return wrongtype(KEYS[3], 'list') end\n"
    "local moved = 0\n"
    "for _, v in ipairs(victims) do\n"
    "  while redis.call('LMOVE', v[1], KEYS[3], 'RIGHT', 'LEFT') do moved = moved + 1 end\n"
    "  redis.call('HDEL', KEYS[2], v[1])\n"
    "  redis.pcall('HDEL', KEYS[4], v[1])\n"
    "  gone[v[2]] = true\n"
    "end\n"
    "for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do\n"
    "  if d ~= ARGV[1] then gone[d] = true end\n"
    "end\n"
    "for d in pairs(forced) do\n"
    "  if redis.call('ZSCORE', KEYS[1], d) then gone[d] = true end\n"
    "end\n"
    "local out = {moved, 0}\n"
    "for d in pairs(gone) do\n"
    "  redis.call('ZREM', KEYS[1], d)\n"
    "  out[#out + 1] = d\n"
    "end\n"
    "out[2] = #out - 2\n"
    "for i = 3 + nforced, #ARGV do\n"
    "  if not gone[ARGV[i]] and redis.call('ZSCORE', KEYS[1], ARGV[i]) then out[#out + 1] = ARGV[i] end\n"
    "end\n"
    "return out\n";

/* jobq enqueue: the same code as FCALL jobq_enqueue, with every key
 * declared. ARGV: job, due time ('' = now), unique ('1'), channel, its
 * publish command.
 * Returns {id, 1 when a unique job was already held (nothing queued)}. */
static const char enqueue_lua[] = LUA_COMMON LUA_ENQUEUE
    "local due = ARGV[2] ~= '' and tonumber(ARGV[2]) or nil\n"
    "local id, why, duplicate = enqueue({queue = KEYS[1], scheduled = KEYS[2], unique = KEYS[3],\n"
    "  ids = KEYS[4]},\n"
    "  ARGV[1], {due = due, unique = ARGV[3] == '1', channel = ARGV[4], publish = ARGV[5]})\n"
    "if not id then return redis.error_reply('ERR jobq: ' .. why) end\n"
    "return {id, duplicate and 1 or 0}\n";

/* jobq batch create: queue every job ARGV[9..] (each with "batch" =
 * ARGV[3]; ids unique among them) like jobq_enqueue, and create the batch
 * hash KEYS[5] in the same step: total, ok and failed counts and the
 * callback (ARGV[4] id, [5] handler, [6] its members but id and args, [7]
 * its args' members) that the commit of the last job queues (LUA_ENDED),
 * ARGV[8] seconds the batch is kept once done. KEYS: queue, scheduled,
 * unique, ids, batch. ARGV[1], [2]: channel, publish command. Returns the
 * job ids. */
static const char batch_lua[] = LUA_COMMON LUA_ENQUEUE
    "local prefix, queue = queue_of(KEYS[1])\n"
    "if not prefix then return redis.error_reply('ERR jobq: bad queue key ' .. KEYS[1]) end\n"
    "if #ARGV < 9 then return redis.error_reply('ERR jobq: a batch needs at least one job') end\n"
    "if redis.call('EXISTS', KEYS[5]) == 1 then\n"
    "  return redis.error_reply('ERR jobq: batch ' .. ARGV[3] .. ' exists already')\n"
    "end\n"
    "if not key_is(KEYS[1], 'list') then return wrongtype(KEYS[1], 'list') end\n"
    "local seen = {}\n"
    "for i = 9, #ARGV do\n"
    "  local job, bad = parse(ARGV[i])\n"
    "  if not job then return redis.error_reply('ERR jobq: job ' .. (i - 8) .. ': ' .. bad) end\n"
    "  if job.batch ~= ARGV[3] then\n"
    "    return redis.error_reply('ERR jobq: job ' .. (i - 8) .. ': its \"batch\" must be ' .. ARGV[3])\n"
    "  end\n"
    "  if type(job.id) == 'string' then\n"
    "    if seen[job.id] then\n"
    "      return redis.error_reply('ERR jobq: job ' .. (i - 8) .. ': id ' .. job.id .. ' is used twice')\n"
    "    end\n"
    "    seen[job.id] = true\n"
    "  end\n"
    "end\n"
    "local ids = {}\n"
    "for i = 9, #ARGV do\n"
    "  ids[#ids + 1] = enqueue({queue = KEYS[1], scheduled = KEYS[2], unique = KEYS[3], ids = KEYS[4]},\n"
    "    ARGV[i], {channel = ARGV[1], publish = ARGV[2]})\n"
    "end\n"
    "redis.call('HSET', KEYS[5], 'id', ARGV[3], 'queue', queue, 'total', #ids, 'ok', 0, 'failed', 0,\n"
    "  'cb_id', ARGV[4], 'cb_handler', ARGV[5], 'cb_head', ARGV[6], 'cb_args', ARGV[7], 'ttl', ARGV[8],\n"
    "  'created_at', string.format('%.6f', now_s()))\n"
    "return ids\n";

/* Fire one cron tick into a queue, once over every daemon: the tick's
 * member ARGV[2] ("name@tick") is added to KEYS[5] (scored by the tick,
 * ARGV[3]; ticks older than two days are dropped) in the same step as the
 * job ARGV[1] is queued, and a tick already there queues nothing. ARGV[4],
 * ARGV[5]: channel, publish command. {1, id} queued, {0} fired already. */
static const char cron_fire_lua[] = LUA_COMMON LUA_ENQUEUE
    "if not key_is(KEYS[5], 'zset') then return wrongtype(KEYS[5], 'zset') end\n"
    "if redis.call('ZSCORE', KEYS[5], ARGV[2]) then return {0} end\n"
    "local id, why = enqueue({queue = KEYS[1], scheduled = KEYS[2], unique = KEYS[3], ids = KEYS[4]},\n"
    "  ARGV[1], {channel = ARGV[4], publish = ARGV[5]})\n"
    "if not id then return redis.error_reply('ERR jobq: ' .. why) end\n"
    "redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[3]) - 172800)\n"
    "return {1, id}\n";

/* Cancel a waiting (ARGV[2] 'l'), scheduled ('z') or parked ('h', KEYS[1]
 * the parked hash, ARGV[3] its field) job given its exact payload; the
 * caller writes its result afterwards. A parked job's id stays in the
 * waiters sets: releasing it later finds nothing parked and moves nothing. */
static const char cancel_lua[] = LUA_COMMON
    "local n\n"
    "if ARGV[2] == 'z' then n = redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "elseif ARGV[2] == 'h' then\n"
    "  if redis.call('HGET', KEYS[1], ARGV[3]) ~= ARGV[1] then return 0 end\n"
    "  n = redis.call('HDEL', KEYS[1], ARGV[3])\n"
    "else n = redis.call('LREM', KEYS[1], 1, ARGV[1]) end\n"
    "if n == 0 then return 0 end\n"
    "redis.pcall('ZREM', KEYS[2], ARGV[3])\n"
    "publish(ARGV[6], ARGV[5], ARGV[4])\n"
    "return 1\n";

/* Re-queue a dead entry's payload, if the entry is still there. */
static const char dead_retry_lua[] = LUA_COMMON
    "if not key_is(KEYS[2], 'list') then return wrongtype(KEYS[2], 'list') end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "redis.call('RPUSH', KEYS[2], ARGV[2])\n"
    "publish(ARGV[7], ARGV[6], queued_event(ARGV[3], ARGV[4], ARGV[5], now_s()))\n"
    "return 1\n";

static const char dead_purge_lua[] =
    "local n = redis.call('LLEN', KEYS[1])\n"
    "redis.call('DEL', KEYS[1])\n"
    "return n\n";

/* Run, on scratch keys of one queue's slot, every command the scripts use,
 * and return the ones Redis refuses (an ACL without them, a command renamed
 * away, maxmemory), so that the daemon can say so once at start instead of
 * failing job after job. ARGV: a channel next to the events channel,
 * where nobody listens, the message, the publish command. */
static const char probe_lua[] = LUA_COMMON
    "local refused = {}\n"
    "local function try(...)\n"
    "  local ok, r = pcall(redis.pcall, ...)\n"
    "  if not ok then r = {err = tostring(r)} end\n"
    "  if type(r) == 'table' and r.err then refused[#refused + 1] = select(1, ...) .. ': ' .. r.err end\n"
    "end\n"
    "try('TIME')\n"
    "try('TYPE', KEYS[1])\n"
    "try('EXISTS', KEYS[1])\n"
    "try('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])\n"
    "try('RPUSH', KEYS[1], 'a', 'b')\n"
    "try('LPUSH', KEYS[1], 'c')\n"
    "try('LLEN', KEYS[1])\n"
    "try('LPOP', KEYS[1], 1)\n"
    "try('LMOVE', KEYS[1], KEYS[1], 'RIGHT', 'LEFT')\n"
    "try('LREM', KEYS[1], 1, 'a')\n"
    "try('LRANGE', KEYS[1], 0, -1)\n"
    "try('ZADD', KEYS[2], 1, 'a')\n"
    "try('ZSCORE', KEYS[2], 'a')\n"
    "try('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
    "try('ZRANGEBYSCORE', KEYS[2], '-inf', 2, 'LIMIT', 0, 1)\n"
    "try('ZREMRANGEBYSCORE', KEYS[2], '-inf', 0)\n"
    "try('ZREM', KEYS[2], 'a')\n"
    "try('HSET', KEYS[3], 'a', 'b')\n"
    "try('HGET', KEYS[3], 'a')\n"
    "try('HGETALL', KEYS[3])\n"
    "try('ZCARD', KEYS[2])\n"
    "try('PEXPIRE', KEYS[2], 1000)\n"
    "try('HINCRBY', KEYS[3], 'n', 1)\n"
    "try('HINCRBYFLOAT', KEYS[3], 's', '0.5')\n"
    "try('HDEL', KEYS[3], 'a')\n"
    "try('INCR', KEYS[4])\n"
    "try('DEL', KEYS[4])\n"
    "try('SADD', KEYS[4], 'a')\n"
    "try('SMEMBERS', KEYS[4])\n"
    "try('EXISTS', KEYS[4])\n"
    "try('HSETNX', KEYS[3], 'b', 'c')\n"
    "try('HMGET', KEYS[3], 'a', 'b')\n"
    "try('EXPIRE', KEYS[3], 60)\n"
    "try(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1], ARGV[2])\n"
    "try('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])\n"
    "return refused\n";

/* The FUNCTION library: FCALL jobq_enqueue 1 PREFIX:{QUEUE}:queue JOB-JSON
 * (QUEUE: 1 to 64 of A-Z a-z 0-9 _ . : -) and the same for
 * jobq_enqueue_unique. They return the job id; jobq_enqueue_unique_ex
 * returns {id, "queued"} or {id, "duplicate"} (nothing queued). Besides the declared queue
 * key they use PREFIX:{QUEUE}:ids (ids they assign), PREFIX:{QUEUE}:unique
 * and, delayed, PREFIX:{QUEUE}:scheduled: all in the queue's own hash slot.
 * The 0-key form of jobq 0.1.0 (FCALL jobq_enqueue 0 QUEUE JOB-JSON) is
 * refused with the form to use: its key was not declared. */
static const char function_library[] =
    "#!lua name=jobq\n"
    "-- jobq: enqueue jobs from any Redis client; jobq_version returns VERSION.\n"
    "--   FCALL jobq_enqueue 1 PREFIX:{QUEUE}:queue JOB-JSON\n"
    "-- and the same for jobq_enqueue_unique. Both return the job id;\n"
    "-- jobq_enqueue_unique_ex returns {id, 'queued' or 'duplicate'}.\n"
    "local VERSION = " STR(FUNCTIONS_VERSION) "\n"
    LUA_COMMON LUA_ENQUEUE
    "local function call(name, keys, args, unique, ex)\n"
    "  if #keys ~= 1 or #args ~= 1 then\n"
    "    local hint = ''\n"
    "    if #keys == 0 and #args == 2 then\n"
    "      hint = \" (for queue '\" .. tostring(args[1]) .. \"': FCALL \" .. name .. \" 1 'jobq:{\" ..\n"
    "        tostring(args[1]) .. \"}:queue' JOB-JSON)\"\n"
    "    end\n"
    "    return redis.error_reply('ERR jobq: usage: FCALL ' .. name .. ' 1 PREFIX:{QUEUE}:queue JOB-JSON' .. hint)\n"
    "  end\n"
    "  local key, json = keys[1], args[1]\n"
    "  local base = string.match(key, '^(.*):queue$') or key\n"
    "  -- On a cluster the queued event goes to the queue's sharded channel.\n"
    "  local opts = {unique = unique}\n"
    "  if type(redis.pcall('CLUSTER', 'KEYSLOT', key)) == 'number' then\n"
    "    opts.publish, opts.channel = 'SPUBLISH', base .. ':events'\n"
    "  end\n"
    "  local id, why, duplicate = enqueue({queue = key, scheduled = base .. ':scheduled',\n"
    "    unique = base .. ':unique', ids = base .. ':ids'}, json, opts)\n"
    "  if not id then return redis.error_reply('ERR jobq: ' .. why) end\n"
    "  if ex then return {id, duplicate and 'duplicate' or 'queued'} end\n"
    "  return id\n"
    "end\n"
    "redis.register_function{function_name = 'jobq_version', flags = {'no-writes'},\n"
    "  callback = function() return VERSION end}\n"
    "redis.register_function('jobq_enqueue', function(keys, args)\n"
    "  return call('jobq_enqueue', keys, args, false)\n"
    "end)\n"
    "redis.register_function('jobq_enqueue_unique', function(keys, args)\n"
    "  return call('jobq_enqueue_unique', keys, args, true)\n"
    "end)\n"
    "redis.register_function('jobq_enqueue_unique_ex', function(keys, args)\n"
    "  return call('jobq_enqueue_unique_ex', keys, args, true, true)\n"
    "end)\n";

static const struct {
    const char *name;
    const char *source;
} scripts[JOBQ_SCRIPT_COUNT] = {
    [JOBQ_SCRIPT_TAKE] = {"take", take_lua},
    [JOBQ_SCRIPT_CONFIRM] = {"confirm", confirm_lua},
    [JOBQ_SCRIPT_REQUEUE] = {"requeue", requeue_lua},
    [JOBQ_SCRIPT_COMMIT] = {"commit", commit_lua},
    [JOBQ_SCRIPT_PROMOTE] = {"promote", promote_lua},
    [JOBQ_SCRIPT_BURY] = {"bury", bury_lua},
    [JOBQ_SCRIPT_LEASE] = {"lease", lease_lua},
    [JOBQ_SCRIPT_RECLAIM] = {"reclaim", reclaim_lua},
    [JOBQ_SCRIPT_ENQUEUE] = {"enqueue", enqueue_lua},
    [JOBQ_SCRIPT_CRON_FIRE] = {"cron fire", cron_fire_lua},
    [JOBQ_SCRIPT_CANCEL] = {"cancel", cancel_lua},
    [JOBQ_SCRIPT_DEAD_RETRY] = {"dead retry", dead_retry_lua},
    [JOBQ_SCRIPT_DEAD_PURGE] = {"dead purge", dead_purge_lua},
    [JOBQ_SCRIPT_PROBE] = {"probe", probe_lua},
    [JOBQ_SCRIPT_PARK] = {"park", park_lua},
    [JOBQ_SCRIPT_RELEASE] = {"release", release_lua},
    [JOBQ_SCRIPT_BATCH] = {"batch", batch_lua},
};

const char *jobq_script_source(enum jobq_script s) {
    return s >= 0 && s < JOBQ_SCRIPT_COUNT ? scripts[s].source : "";
}

const char *jobq_script_name(enum jobq_script s) {
    return s >= 0 && s < JOBQ_SCRIPT_COUNT ? scripts[s].name : "?";
}

const char *jobq_script_function_library(void) { return function_library; }

int jobq_script_function_version(void) { return FUNCTIONS_VERSION; }
