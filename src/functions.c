/*
 * The jobq Redis FUNCTION library: its Lua source and the check that installs
 * or upgrades it (never downgrades). The library only builds key names from
 * the prefix it is given, so one library serves every prefix on a server.
 */
#include "functions.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* Error replies read "ERR jobq: why". A job's text is pushed as given, with
 * "id" and "enqueued_at" spliced in front when missing; only a job whose id
 * is JSON null is re-encoded by cjson (which writes empty arrays as {} and
 * numbers with 14 significant digits). The unique form keeps a lock
 * PREFIX:unique:ID holding the job's enqueued_at, for result_ttl seconds
 * (the job's, else 86400): a later call finds the job finished when
 * PREFIX:result:ID has that same enqueued_at. */
static const char source[] =
    "#!lua name=jobq\n"
    "-- jobq: enqueue jobs from any Redis client; jobq_version returns VERSION.\n"
    "-- Forms (QUEUE: 1-64 of A-Z a-z 0-9 _ . : -):\n"
    "--   FCALL jobq_enqueue 0 QUEUE JOB-JSON              keys under the prefix \"jobq\"\n"
    "--   FCALL jobq_enqueue 1 PREFIX:queue:QUEUE JOB-JSON any prefix\n"
    "-- and the same for jobq_enqueue_unique. Both return the job id.\n"
    "local VERSION = " STR(JOBQ_FUNCTIONS_VERSION) "\n"
    "local WS = '^[ \\t\\r\\n]*{'\n"
    "\n"
    "local function fail(msg)\n"
    "  return redis.error_reply('ERR jobq: ' .. msg)\n"
    "end\n"
    "\n"
    "-- The prefix, queue and job text of a call, or nil and why.\n"
    "local function target(keys, args, name)\n"
    "  local usage = 'usage: FCALL ' .. name .. ' 0 QUEUE JOB-JSON, or FCALL ' .. name ..\n"
    "    ' 1 PREFIX:queue:QUEUE JOB-JSON'\n"
    "  local prefix, queue, json\n"
    "  if #keys == 0 and #args == 2 then\n"
    "    prefix, queue, json = 'jobq', args[1], args[2]\n"
    "  elseif #keys == 1 and #args == 1 then\n"
    "    local s, e = string.find(keys[1], ':queue:', 1, true)\n"
    "    if not s or s == 1 then\n"
    "      return nil, \"the key must be PREFIX:queue:QUEUE, not '\" .. keys[1] .. \"'\"\n"
    "    end\n"
    "    prefix, queue, json = string.sub(keys[1], 1, s - 1), string.sub(keys[1], e + 1), args[1]\n"
    "  else\n"
    "    return nil, usage\n"
    "  end\n"
    "  if #queue == 0 or #queue > 64 or not string.find(queue, '^[%w_.:%-]+$') then\n"
    "    return nil, \"bad queue name '\" .. queue .. \"': use 1 to 64 of A-Z a-z 0-9 _ . : -\"\n"
    "  end\n"
    "  return {prefix = prefix, queue = queue, json = json}\n"
    "end\n"
    "\n"
    "-- The decoded job, or nil and why.\n"
    "local function parse(json)\n"
    "  local ok, job = pcall(cjson.decode, json)\n"
    "  if not ok then\n"
    "    return nil, 'the job is not valid JSON: ' .. tostring(job)\n"
    "  end\n"
    "  if type(job) ~= 'table' or not string.find(json, WS) then\n"
    "    return nil, 'the job must be a JSON object'\n"
    "  end\n"
    "  if type(job.handler) ~= 'string' or job.handler == '' then\n"
    "    return nil, \"the job needs a 'handler' field, a non-empty string\"\n"
    "  end\n"
    "  local id = job.id\n"
    "  if id ~= nil and id ~= cjson.null and (type(id) ~= 'string' or id == '' or #id > 128) then\n"
    "    return nil, \"'id' must be a non-empty string of at most 128 bytes\"\n"
    "  end\n"
    "  return job\n"
    "end\n"
    "\n"
    "-- The payload to push: the producer's text with \"id\" and \"enqueued_at\"\n"
    "-- added in front when missing, so everything else stays byte for byte.\n"
    "local function complete(json, job, id, stamp)\n"
    "  if job.id == cjson.null then\n"
    "    -- A second \"id\" key would be a duplicate: re-encode instead.\n"
    "    job.id = id\n"
    "    if job.enqueued_at == nil then job.enqueued_at = tonumber(stamp) end\n"
    "    return cjson.encode(job)\n"
    "  end\n"
    "  local add = {}\n"
    "  if job.id == nil then add[#add + 1] = '\"id\":' .. cjson.encode(id) end\n"
    "  if job.enqueued_at == nil then add[#add + 1] = '\"enqueued_at\":' .. stamp end\n"
    "  if #add == 0 then return json end\n"
    "  local _, e = string.find(json, '^[ \\t\\r\\n]*{[ \\t\\r\\n]*')\n"
    "  local rest = string.sub(json, e + 1)\n"
    "  local sep = ','\n"
    "  if string.sub(rest, 1, 1) == '}' then sep = '' end\n"
    "  return '{' .. table.concat(add, ',') .. sep .. rest\n"
    "end\n"
    "\n"
    "-- Has the job enqueued at stamp finished? Its result carries the same\n"
    "-- enqueued_at (the worker copies it from the payload).\n"
    "local function finished(prefix, id, stamp)\n"
    "  local res = redis.call('GET', prefix .. ':result:' .. id)\n"
    "  if not res or not stamp then return false end\n"
    "  local ok, doc = pcall(cjson.decode, res)\n"
    "  return ok and type(doc) == 'table' and type(doc.enqueued_at) == 'number' and\n"
    "    doc.enqueued_at >= stamp - 0.001\n"
    "end\n"
    "\n"
    "local function enqueue(keys, args, unique)\n"
    "  local t, why = target(keys, args, unique and 'jobq_enqueue_unique' or 'jobq_enqueue')\n"
    "  if not t then return fail(why) end\n"
    "  local job, bad = parse(t.json)\n"
    "  if not job then return fail(bad) end\n"
    "  local id = job.id\n"
    "  if unique and type(id) ~= 'string' then\n"
    "    return fail(\"jobq_enqueue_unique needs the job's own 'id'\")\n"
    "  end\n"
    "  local time = redis.call('TIME')\n"
    "  local now = tonumber(time[1]) + tonumber(time[2]) / 1e6\n"
    "  local stamp = string.format('%.6f', now)\n"
    "  if type(id) ~= 'string' then\n"
    "    local n = redis.call('INCR', t.prefix .. ':ids')\n"
    "    id = string.format('%08x%05x%x', tonumber(time[1]), tonumber(time[2]), n)\n"
    "  end\n"
    "  local lock, ttl\n"
    "  if unique then\n"
    "    local ea = job.enqueued_at\n"
    "    if ea ~= nil then\n"
    "      if type(ea) ~= 'number' or ea <= 0 then\n"
    "        return fail(\"'enqueued_at' must be a positive number of seconds\")\n"
    "      end\n"
    "      stamp = string.format('%.6f', ea)\n"
    "    end\n"
    "    lock = t.prefix .. ':unique:' .. id\n"
    "    local held = redis.call('GET', lock)\n"
    "    if held and not finished(t.prefix, id, tonumber(held)) then return id end\n"
    "    ttl = job.result_ttl\n"
    "    if type(ttl) ~= 'number' or ttl < 1 then ttl = 86400 end\n"
    "  end\n"
    "  redis.call('RPUSH', t.prefix .. ':queue:' .. t.queue, complete(t.json, job, id, stamp))\n"
    "  if unique then redis.call('SET', lock, stamp, 'EX', math.floor(ttl)) end\n"
    "  redis.call('PUBLISH', t.prefix .. ':events', cjson.encode({event = 'queued', id = id,\n"
    "    queue = t.queue, handler = job.handler, time = now}))\n"
    "  return id\n"
    "end\n"
    "\n"
    "redis.register_function{function_name = 'jobq_version', flags = {'no-writes'},\n"
    "  callback = function() return VERSION end}\n"
    "redis.register_function('jobq_enqueue', function(keys, args)\n"
    "  return enqueue(keys, args, false)\n"
    "end)\n"
    "redis.register_function('jobq_enqueue_unique', function(keys, args)\n"
    "  return enqueue(keys, args, true)\n"
    "end)\n";

const char *jobq_functions_source(void) { return source; }

/* The "library_code" of library "jobq" in a FUNCTION LIST reply (borrowed
 * from it), or NULL. */
static const char *installed_code(json_t *list) {
    size_t i, j;
    json_t *lib;
    json_array_foreach(list, i, lib) {
        const char *name = NULL, *code = NULL;
        for (j = 0; j + 1 < json_array_size(lib); j += 2) {
            const char *k = json_string_value(json_array_get(lib, j));
            json_t *v = json_array_get(lib, j + 1);
            if (k && strcmp(k, "library_name") == 0) name = json_string_value(v);
            if (k && strcmp(k, "library_code") == 0) code = json_string_value(v);
        }
        if (name && strcmp(name, "jobq") == 0) return code;
    }
    return NULL;
}

int jobq_functions_ensure(jobq_queue *q, jobq_err *err) {
    json_t *list = NULL, *ver = NULL, *loaded = NULL;
    const char *list_argv[] = {"FUNCTION", "LIST", "LIBRARYNAME", "jobq", "WITHCODE"};
    if (jobq_queue_command_json(q, &list, err, 5, list_argv, NULL) != 0) return -1;
    const char *code = installed_code(list);
    int rc = 0;
    if (code && strcmp(code, source) == 0) goto out;
    if (code) {
        /* Another jobq's library: keep it if it is newer. */
        const char *ver_argv[] = {"FCALL", "jobq_version", "0"};
        jobq_err ignored;
        if (jobq_queue_command_json(q, &ver, &ignored, 3, ver_argv, NULL) == 0 &&
            json_is_integer(ver) && json_integer_value(ver) > JOBQ_FUNCTIONS_VERSION)
            goto out;
        if (!jobq_queue_connected(q)) {
            *err = ignored;
            rc = -1;
            goto out;
        }
    }
    const char *load_argv[] = {"FUNCTION", "LOAD", "REPLACE", source};
    if (jobq_queue_command_json(q, &loaded, err, 4, load_argv, NULL) != 0) {
        rc = -1;
        goto out;
    }
    rc = 1;
out:
    json_decref(list);
    json_decref(ver);
    json_decref(loaded);
    return rc;
}
