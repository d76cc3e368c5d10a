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
#define FUNCTIONS_VERSION 4

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

/* Take up to ARGV[1] jobs, moving each into this worker's in-flight list in
 * the same step so a taken job is never only in memory; never more than a
 * fair share of what waits (its length divided by ARGV[2], the workers
 * serving it, at least one), so a batch cannot starve idle workers. Refused
 * ({-1}) when the daemon's lease has lapsed: it may have been declared dead
 * and its jobs handed to others. Returns {jobs left, ms the lease still
 * runs, jobs...}. */
static const char take_lua[] = LUA_COMMON
    "local lease, now = redis.call('ZSCORE', KEYS[3], ARGV[3]), now_ms()\n"
    "if not lease or tonumber(lease) < now then return {-1} end\n"
    "local left = tonumber(lease) - now\n"
    "local len = redis.pcall('LLEN', KEYS[1])\n"
    "if type(len) == 'table' then return wrongtype(KEYS[1], 'list') end\n"
    "if len == 0 then return {0, left} end\n"
    "if not key_is(KEYS[2], 'list') then return wrongtype(KEYS[2], 'list') end\n"
    "local want = math.min(tonumber(ARGV[1]), math.max(1, math.floor(len / tonumber(ARGV[2]))))\n"
    "local items = redis.call('LPOP', KEYS[1], want)\n"
    "redis.call('RPUSH', KEYS[2], unpack(items))\n"
    "local out = {len - #items, left}\n"
    "for i = 1, #items do out[i + 2] = items[i] end\n"
    "return out\n";

/* Pipelined right after a BLMOVE into the in-flight list: the lease is
 * checked once the blocking move returned (the ms it still runs are
 * returned), and a fenced daemon's worker hands what it got straight back
 * (-1). */
static const char confirm_lua[] = LUA_COMMON
    "local lease, now = redis.call('ZSCORE', KEYS[1], ARGV[1]), now_ms()\n"
    "if lease and tonumber(lease) >= now then return tonumber(lease) - now end\n"
    "if not key_is(KEYS[3], 'list') then return wrongtype(KEYS[3], 'list') end\n"
    "while redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT') do end\n"
    "return -1\n";

/* Everything back to the head of the queue in order; with ARGV[1] == '1'
 * the list is also forgotten from the holders, in the same step, so it is
 * never forgotten while it still holds jobs (a queue key of another type
 * only matters when there is something to put back). */
static const char requeue_lua[] = LUA_COMMON
    "if redis.call('LLEN', KEYS[1]) > 0 and not key_is(KEYS[2], 'list') then\n"
    "  return wrongtype(KEYS[2], 'list')\n"
    "end\n"
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end\n"
    "if ARGV[1] == '1' then redis.call('HDEL', KEYS[3], KEYS[1]) end\n"
    "return n\n";

/* Record the outcomes of a batch (the results were written just before).
 * ARGV: events channel, its publish command, n, then per job 7 from index
 * 4: payload, flags (f: counts as processed, x: as failed, r: retried, d:
 * rejected, c: cancelled), dead entry, retry due time, retry payload,
 * event, id whose unique hold ends ('' for none); then the latency
 * histogram increments of the batch in pairs (field, increment; a field
 * ending in |sum takes a decimal), applied when every job of the batch was
 * recorded, and skipped when the histo key holds another type (metrics
 * never block jobs). A job is recorded only while it is still in the
 * in-flight list: a commit that is sent again after a lost reply, or for a
 * job another daemon reclaimed, writes nothing twice; those jobs are
 * returned. The LREM comes first: once a script has written, Redis lets it
 * finish even past maxmemory, so an outcome is never half done. Counters
 * are tallied per distinct flags string, one HINCRBY per counter. */
static const char commit_lua[] = LUA_COMMON
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
    "for i = 0, n - 1 do\n"
    "  local b = 4 + i * 7\n"
    "  if redis.call('LREM', KEYS[1], 1, ARGV[b]) == 1 then\n"
    "    if ARGV[b + 2] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[b + 2]) end\n"
    "    if ARGV[b + 4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[b + 3], ARGV[b + 4]) end\n"
    "    if ARGV[b + 6] ~= '' then redis.call('ZREM', KEYS[5], ARGV[b + 6]) end\n"
    "    if ARGV[b + 5] ~= '' then publish(ARGV[2], ARGV[1], ARGV[b + 5]) end\n"
    "    local f = ARGV[b + 1]\n"
    "    tally[f] = (tally[f] or 0) + 1\n"
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
    "local h = 4 + n * 7\n"
    "if #skipped == 0 and #ARGV > h and key_is(KEYS[6], 'hash') then\n"
    "  for i = h, #ARGV - 1, 2 do\n"
    "    if string.sub(ARGV[i], -4) == '|sum' then redis.call('HINCRBYFLOAT', KEYS[6], ARGV[i], ARGV[i + 1])\n"
    "    else redis.call('HINCRBY', KEYS[6], ARGV[i], ARGV[i + 1]) end\n"
    "  end\n"
    "end\n"
    "return skipped\n";

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

/* Put back the jobs of in-flight lists KEYS[4..] whose daemon's lease has
 * lapsed (or who is forced: a dead process on the caller's own host),
 * forget those lists and leases. ARGV: the caller (spared), the number of
 * forced daemons, them, then the watched daemons (gone by heartbeat) to
 * report on. Each list is re-checked here: it is only touched while the
 * holders still give it to such a daemon. Lapsed leases holding nothing are
 * dropped too, so a stalled daemon that comes back finds out (LEASE returns
 * 0). The queue key's type matters only when there is something to put
 * back. Returns {moved, number dropped, daemons dropped..., watched daemons
 * whose lease still runs...}. */
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
    "for i = 4, #KEYS do\n"
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

/* Cancel a waiting (ARGV[2] 'l') or scheduled ('z') job given its exact
 * payload; the caller writes its result afterwards. */
static const char cancel_lua[] = LUA_COMMON
    "local n\n"
    "if ARGV[2] == 'z' then n = redis.call('ZREM', KEYS[1], ARGV[1])\n"
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
    "try('HINCRBY', KEYS[3], 'n', 1)\n"
    "try('HINCRBYFLOAT', KEYS[3], 's', '0.5')\n"
    "try('HDEL', KEYS[3], 'a')\n"
    "try('INCR', KEYS[4])\n"
    "try(ARGV[3] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1], ARGV[2])\n"
    "try('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])\n"
    "return refused\n";

/* The FUNCTION library: FCALL jobq_enqueue 1 PREFIX:{QUEUE}:queue JOB-JSON
 * (QUEUE: 1 to 64 of A-Z a-z 0-9 _ . : -) and the same for
 * jobq_enqueue_unique. They return the job id. Besides the declared queue
 * key they use PREFIX:{QUEUE}:ids (ids they assign), PREFIX:{QUEUE}:unique
 * and, delayed, PREFIX:{QUEUE}:scheduled: all in the queue's own hash slot.
 * The 0-key form of jobq 0.1.0 (FCALL jobq_enqueue 0 QUEUE JOB-JSON) is
 * refused with the form to use: its key was not declared. */
static const char function_library[] =
    "#!lua name=jobq\n"
    "-- jobq: enqueue jobs from any Redis client; jobq_version returns VERSION.\n"
    "--   FCALL jobq_enqueue 1 PREFIX:{QUEUE}:queue JOB-JSON\n"
    "-- and the same for jobq_enqueue_unique. Both return the job id.\n"
    "local VERSION = " STR(FUNCTIONS_VERSION) "\n"
    LUA_COMMON LUA_ENQUEUE
    "local function call(name, keys, args, unique)\n"
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
    "  local id, why = enqueue({queue = key, scheduled = base .. ':scheduled',\n"
    "    unique = base .. ':unique', ids = base .. ':ids'}, json, opts)\n"
    "  if not id then return redis.error_reply('ERR jobq: ' .. why) end\n"
    "  return id\n"
    "end\n"
    "redis.register_function{function_name = 'jobq_version', flags = {'no-writes'},\n"
    "  callback = function() return VERSION end}\n"
    "redis.register_function('jobq_enqueue', function(keys, args)\n"
    "  return call('jobq_enqueue', keys, args, false)\n"
    "end)\n"
    "redis.register_function('jobq_enqueue_unique', function(keys, args)\n"
    "  return call('jobq_enqueue_unique', keys, args, true)\n"
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
    [JOBQ_SCRIPT_CANCEL] = {"cancel", cancel_lua},
    [JOBQ_SCRIPT_DEAD_RETRY] = {"dead retry", dead_retry_lua},
    [JOBQ_SCRIPT_DEAD_PURGE] = {"dead purge", dead_purge_lua},
    [JOBQ_SCRIPT_PROBE] = {"probe", probe_lua},
};

const char *jobq_script_source(enum jobq_script s) {
    return s >= 0 && s < JOBQ_SCRIPT_COUNT ? scripts[s].source : "";
}

const char *jobq_script_name(enum jobq_script s) {
    return s >= 0 && s < JOBQ_SCRIPT_COUNT ? scripts[s].name : "?";
}

const char *jobq_script_function_library(void) { return function_library; }

int jobq_script_function_version(void) { return FUNCTIONS_VERSION; }
