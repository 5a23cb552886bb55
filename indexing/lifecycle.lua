-- Sieve's document/job state machine, applied atomically inside Redis.
--
-- Every change of a document's state goes through this script, so a check ("is this
-- still version 7, still claimed by me?") and the change it guards, together with every
-- index and counter it touches, happen as one step: no race between the API, the
-- workers, the store writer and the reaper can interleave inside it.
--
-- Layout (P = "sieve:"):
--   P.."doc:"..t..":"..c..":"..id   hash, every field JSON-encoded (the record)
--   P.."docorder:"..t..":"..c       zset id -> seq, documents that exist and are not deleted
--   P.."st:"..t..":"..c..":"..s     zset id -> seq, documents in status s
--   P.."cnt:"..t..":"..c            hash status -> count (this collection)
--   P.."cnt"                        hash status -> count (every collection)
--   P.."running"                    zset ref -> claimed_at, documents claimed by a live owner
--   P.."owner:"..id                 string with a TTL: the owner (a worker process) is alive
--   P.."version"                    counter: every accepted change takes the next value
--   P.."jobdocs:"..j                hash id -> the document's state within job j
--   P.."jobcnt:"..j                 hash state -> count, plus "_done" (terminal entries)
--   P.."joberr:"..j                 hash id -> {"reason","message"} of failed entries
--   P.."jobfin:"..j                 string: when the job's last entry became terminal
--   P.."bytes:"..t..":"..c          counter: the sizes of the collection's live documents
--   P.."collections:"..t            hash name -> the collection's record (JSON); accept checks
--                                   its incarnation, atomically with the writes it guards
--   P.."expiry:"..t..":"..c         zset id -> expires_at (Unix s) of the record's "expires_at":
--                                   queries drop hits of ids whose time passed, the sweep
--                                   deletes them ("expire")
--   P.."restores"                   hash t.."\n"..c -> a restore under way (its lease owner and
--                                   record, indexing/restore.py); "adopt" ends it
--
-- A document's hash may hold "prev": the fields of its live (indexed) version while a newer
-- upload of it is in flight. That upload ending failed or cancelled puts them back, so the
-- record always describes the points queries are served from (README, "re-uploads").
--
-- A finished job is final (a terminal entry never changes), so its five keys are
-- self-contained: they get a TTL of the job retention when the job finishes.
local P = "sieve:"
-- Milliseconds a finished job's keys are kept (the last argument of every call; 0: for ever).
local JOB_TTL_MS = tonumber(ARGV[#ARGV]) or 0
local JOB_PARTS = {"job:", "jobdocs:", "jobcnt:", "joberr:", "jobfin:"}
local TERMINAL = {indexed = true, failed = true, cancelled = true, deleted = true, superseded = true}
local REDO = {failed = true, cancelled = true, deleted = true}
local IN_FLIGHT = {queued = true, parsing = true, embedding = true, writing = true}
-- What an upload that ends this way leaves: the previous live version, put back.
local RESTORES = {failed = true, cancelled = true}

local function enc(v) return cjson.encode(v) end
local function dec(v) if v then return cjson.decode(v) end return nil end
local function dkey(t, c, id) return P .. "doc:" .. t .. ":" .. c .. ":" .. id end
local function ref(t, c, id) return t .. "\n" .. c .. "\n" .. id end
local function alive(owner)
  return owner ~= nil and owner ~= "" and redis.call("EXISTS", P .. "owner:" .. owner) == 1
end

local function count(t, c, status, delta)
  redis.call("HINCRBY", P .. "cnt:" .. t .. ":" .. c, status, delta)
  redis.call("HINCRBY", P .. "cnt", status, delta)
end

-- Move a document between status indexes (old or new may be nil).
local function reindex(t, c, id, seq, old, new)
  if old then
    redis.call("ZREM", P .. "st:" .. t .. ":" .. c .. ":" .. old, id)
    count(t, c, old, -1)
  end
  if new then
    redis.call("ZADD", P .. "st:" .. t .. ":" .. c .. ":" .. new, seq, id)
    count(t, c, new, 1)
    if new == "deleted" then
      redis.call("ZREM", P .. "docorder:" .. t .. ":" .. c, id)
    else
      redis.call("ZADD", P .. "docorder:" .. t .. ":" .. c, "NX", seq, id)
    end
  end
end

-- Webhook events (outbox.lua, prepended to this script, writes them in this same step).
local function job_of(job)
  local raw = redis.call("GET", P .. "job:" .. job)
  if not raw then return nil end
  local rec = cjson.decode(raw)
  if redis.call("EXISTS", W .. "subs:" .. rec.tenant .. ":" .. rec.collection) == 0 then
    return nil
  end
  return rec
end

-- The job ended: job.completed | job.failed | job.cancelled, read as StateStore's _derive
-- reads its state (cancelled first, then any failed entry).
local function job_event(job, now)
  local rec = job_of(job)
  if not rec then return end
  local counts, flat = {}, redis.call("HGETALL", P .. "jobcnt:" .. job)
  for i = 1, #flat, 2 do
    local n = tonumber(flat[i + 1])
    if flat[i] ~= "_done" and n > 0 then counts[flat[i]] = n end
  end
  local etype, state = "job.completed", "completed"
  if rec.cancelled and counts.cancelled then
    etype, state = "job.cancelled", "cancelled"
  elseif counts.failed then
    etype, state = "job.failed", "completed_with_errors"
  end
  wh_emit(rec.tenant, rec.collection, etype,
    {collection = rec.collection, job_id = job, kind = rec.kind, state = state, counts = counts}, now)
end

-- A document of the job failed (err: JSON {"reason", "message"} or "").
local function doc_failed_event(job, id, err, now)
  local rec = job_of(job)
  if not rec then return end
  local why = {}
  if err and err ~= "" then why = cjson.decode(err) end
  wh_emit(rec.tenant, rec.collection, "document.failed",
    {collection = rec.collection, job_id = job, document_id = id,
     reason = why.reason or "", message = why.message or ""}, now)
end

-- The job's last entry ended: stamp it, and let its keys expire after the retention.
local function finish_job(job, now)
  job_event(job, now)
  redis.call("SET", P .. "jobfin:" .. job, now)
  if JOB_TTL_MS > 0 then
    for _, part in ipairs(JOB_PARTS) do redis.call("PEXPIRE", P .. part .. job, JOB_TTL_MS) end
  end
end

-- Record a document's state within its job; a terminal entry is final.
local function job_entry(job, id, state, now, err)
  if job == nil or job == "" then return end
  local jd = P .. "jobdocs:" .. job
  local old = redis.call("HGET", jd, id)
  if not old or old == state or TERMINAL[old] then return end
  redis.call("HSET", jd, id, state)
  local jc = P .. "jobcnt:" .. job
  redis.call("HINCRBY", jc, old, -1)
  redis.call("HINCRBY", jc, state, 1)
  if state == "failed" and err and err ~= "" then
    redis.call("HSET", P .. "joberr:" .. job, id, err)
  end
  if state == "failed" then doc_failed_event(job, id, err, now) end
  if TERMINAL[state] then
    local done = redis.call("HINCRBY", jc, "_done", 1)
    if done >= redis.call("HLEN", jd) then finish_job(job, now) end
  end
end

local function set_running(t, c, id, owner, now)
  if owner ~= nil and owner ~= "" then
    redis.call("ZADD", P .. "running", now, ref(t, c, id))
  else
    redis.call("ZREM", P .. "running", ref(t, c, id))
  end
end

local function get(key, fields)
  local raw = redis.call("HMGET", key, unpack(fields))
  local out = {}
  for i, f in ipairs(fields) do out[f] = dec(raw[i]) end
  return out
end

-- Keep the expiry index in step with a record's "expires_at" (raw JSON; nil or null: none).
local function sync_expiry(t, c, id, raw)
  local key = P .. "expiry:" .. t .. ":" .. c
  local at = dec(raw)
  if type(at) == "number" then
    redis.call("ZADD", key, at, id)
  else
    redis.call("ZREM", key, id)
  end
end

-- Tenant quotas. A tenant's documents are derived from the records (each collection's
-- docorder); its stored bytes are a per-collection counter that every op adding or
-- dropping a live record changes in the same step, and that is rebuilt from the records
-- when missing (a collection from before the counter existed).
local function live(status) return status ~= nil and status ~= "deleted" end
local function num(v) if type(v) == "number" then return v end return 0 end

local function coll_bytes(t, c)
  local key = P .. "bytes:" .. t .. ":" .. c
  local have = redis.call("GET", key)
  if have then return tonumber(have) end
  local total = 0
  for _, id in ipairs(redis.call("ZRANGE", P .. "docorder:" .. t .. ":" .. c, 0, -1)) do
    total = total + num(dec(redis.call("HGET", dkey(t, c, id), "size")))
  end
  redis.call("SET", key, total)
  return total
end

local function add_bytes(t, c, delta)
  coll_bytes(t, c)  -- rebuilt before the change, never after it
  if delta ~= 0 then redis.call("INCRBY", P .. "bytes:" .. t .. ":" .. c, delta) end
end

local function tenant_usage(t)
  local docs, bytes = 0, 0
  for _, c in ipairs(redis.call("HKEYS", P .. "collections:" .. t)) do
    docs = docs + redis.call("ZCARD", P .. "docorder:" .. t .. ":" .. c)
    bytes = bytes + coll_bytes(t, c)
  end
  return docs, bytes
end

local function unchanged(d, old)
  return d.status == "queued" and old.status and old.content_hash == d.hash and not REDO[old.status]
end

-- What accepting docs adds to the tenant's documents and bytes.
local function accept_delta(t, c, docs)
  local ndocs, nbytes = 0, 0
  for _, d in ipairs(docs) do
    local old = get(dkey(t, c, d.id), {"status", "content_hash", "size"})
    if not unchanged(d, old) then
      local old_size = 0
      if live(old.status) then old_size = num(old.size) else ndocs = ndocs + 1 end
      nbytes = nbytes + num(dec(d.fields.size)) - old_size
    end
  end
  return ndocs, nbytes
end

-- nil when docs fit the quota (JSON {"documents": n, "bytes": n}, or ""), else
-- {quota, limit, current, added}. Only growth is refused: a tenant over a lowered quota
-- may still replace or delete.
local function over_by(t, ndocs, nbytes, quota)
  local docs_now, bytes_now = tenant_usage(t)
  if quota.documents and ndocs > 0 and docs_now + ndocs > quota.documents then
    return {"documents", quota.documents, docs_now, ndocs}
  end
  if quota.bytes and nbytes > 0 and bytes_now + nbytes > quota.bytes then
    return {"stored_bytes", quota.bytes, bytes_now, nbytes}
  end
  return nil
end

local function over_quota(t, c, docs, quota_json)
  if quota_json == nil or quota_json == "" then return nil end
  local ndocs, nbytes = accept_delta(t, c, docs)
  return over_by(t, ndocs, nbytes, cjson.decode(quota_json))
end

-- A new collection of ndocs documents and nbytes stored bytes for tenant t: nil when it
-- fits the cap of collections (0: none) and the quota (JSON, or ""), else {over}.
local function collection_over(t, ndocs, nbytes, cap, quota_json)
  local n = redis.call("HLEN", P .. "collections:" .. t)
  if cap > 0 and n >= cap then return {"collections", cap, n, 1} end
  if quota_json == nil or quota_json == "" then return nil end
  return over_by(t, ndocs, nbytes, cjson.decode(quota_json))
end

-- Every field of a document's hash but "prev" (raw JSON strings), as one table.
local function snapshot(key)
  local raw = redis.call("HGETALL", key)
  local out = {}
  for i = 1, #raw, 2 do
    if raw[i] ~= "prev" then out[raw[i]] = raw[i + 1] end
  end
  return out
end

-- An upload in flight ended (failed or cancelled) while an older version is live: the
-- record becomes that version again (status, version, chunks, job), as if it never began.
local function restore(t, c, id, key, from_status, prev, now)
  -- The stored bytes go back with the record: the failed upload's size for the old one's.
  add_bytes(t, c, num(dec(prev.size)) - num(dec(redis.call("HGET", key, "size"))))
  redis.call("DEL", key)
  local args = {}
  for name, value in pairs(prev) do
    table.insert(args, name)
    table.insert(args, value)
  end
  redis.call("HSET", key, unpack(args))
  reindex(t, c, id, dec(prev.seq), from_status, dec(prev.status))
  set_running(t, c, id, "", now)
  sync_expiry(t, c, id, prev.expires_at)
end

-- Tombstone a document at a new version; 0 when there is no such (undeleted) document.
local function tombstone(t, c, id, now)
  local key = dkey(t, c, id)
  redis.call("ZREM", P .. "expiry:" .. t .. ":" .. c, id)
  local doc = get(key, {"status", "job_id", "seq", "size"})
  if not doc.status or doc.status == "deleted" then return 0 end
  add_bytes(t, c, -num(doc.size))
  local version = redis.call("INCR", P .. "version")
  redis.call("HSET", key, "status", enc("deleted"), "version", enc(version), "owner", enc(""),
    "updated_at", enc(tonumber(now)))
  redis.call("HDEL", key, "prev")
  reindex(t, c, id, doc.seq, doc.status, "deleted")
  set_running(t, c, id, "", now)
  job_entry(doc.job_id, id, "deleted", now, nil)
  return version
end

-- ARGV[1] names the operation; every call's last argument is JOB_TTL_MS (see above).
local op = ARGV[1]


-- quota(t, c, docs_json, quota_json): would accept() refuse these docs? {} or {over}.
if op == "quota" then
  local over = over_quota(ARGV[2], ARGV[3], cjson.decode(ARGV[4]), ARGV[5])
  if over then return {over} end
  return {}
end

-- fits(t, ndocs, nbytes, cap, quota_json): would a restore of that size be refused? {} or {over}.
if op == "fits" then
  local over = collection_over(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
    ARGV[6])
  if over then return {over} end
  return {}
end

-- adopt(t, c, record_json, cap, quota_json): a restore's deletion marker (written with its
-- documents under it, indexing/restore.py) becomes the collection, under the cap and the
-- quota, in one step. {"ok"}; {"gone"}: the marker is not this restore's (deleted
-- meanwhile); {"taken"}: the name exists; {{over}}: over the cap or the quota.
if op == "adopt" then
  local t, c, rec = ARGV[2], ARGV[3], ARGV[4]
  local colls, marker = P .. "collections:" .. t, P .. "coldel:" .. t .. ":" .. c
  if redis.call("GET", marker) ~= rec then return {"gone"} end
  if redis.call("HEXISTS", colls, c) == 1 then return {"taken"} end
  local ndocs = redis.call("ZCARD", P .. "docorder:" .. t .. ":" .. c)
  local over = collection_over(t, ndocs, coll_bytes(t, c), tonumber(ARGV[5]), ARGV[6])
  if over then return {over} end
  redis.call("HSET", colls, c, rec)
  redis.call("DEL", marker)
  redis.call("SADD", P .. "tenants", t)
  redis.call("HDEL", P .. "restores", t .. "\n" .. c)
  return {"ok"}
end

-- accept(t, c, job_json, job_id, now, docs_json, incarnation, quota_json)
-- docs_json: [{"id", "status": "queued"|"failed", "hash", "fields": {name: json}, "error"}]
-- Returns a flat list: id, version (0 = unchanged or kept, skipped); or {"gone"}, writing
-- nothing, when the collection is not (any more) the incarnation the caller checked; or
-- {{quota, limit, current, added}} and no change at all when the docs do not fit the
-- tenant's quota. A failed entry never replaces a document that is indexed, in flight or
-- deleted: only its job entry records the failure.
if op == "accept" then
  local t, c, job_json, job, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local raw = redis.call("HGET", P .. "collections:" .. t, c)
  if not raw then return {"gone"} end
  local inc = cjson.decode(raw).incarnation
  if type(inc) ~= "string" then inc = "" end
  if inc ~= ARGV[8] then return {"gone"} end
  local docs = cjson.decode(ARGV[7])
  local over = over_quota(t, c, docs, ARGV[9])
  if over then return {over} end
  coll_bytes(t, c)
  redis.call("SET", P .. "job:" .. job, job_json)
  local jd, jc = P .. "jobdocs:" .. job, P .. "jobcnt:" .. job
  local out = {}
  local entries = 0
  for _, d in ipairs(docs) do
    local key = dkey(t, c, d.id)
    local old = get(key, {"status", "content_hash", "job_id", "seq", "size"})
    if unchanged(d, old) then
      -- Same content: the upload's expiry still replaces the document's (README, "Expiry").
      local expiry = d.fields.expires_at or enc(cjson.null)
      redis.call("HSET", key, "expires_at", expiry)
      sync_expiry(t, c, d.id, expiry)
      table.insert(out, d.id)
      table.insert(out, 0)
    elseif d.status == "failed" and old.status and old.status ~= "failed" and old.status ~= "cancelled" then
      redis.call("HSET", jd, d.id, "failed")
      redis.call("HINCRBY", jc, "failed", 1)
      redis.call("HINCRBY", jc, "_done", 1)
      entries = entries + 1
      if d.error and d.error ~= "" then redis.call("HSET", P .. "joberr:" .. job, d.id, d.error) end
      doc_failed_event(job, d.id, d.error, now)
      table.insert(out, d.id)
      table.insert(out, 0)
    else
      local prev = nil
      if d.status == "queued" and old.status == "indexed" then
        prev = snapshot(key)
      elseif d.status == "queued" and IN_FLIGHT[old.status] then
        prev = dec(redis.call("HGET", key, "prev"))
      end
      local version = redis.call("INCR", P .. "version")
      local old_size = 0
      if live(old.status) then old_size = num(old.size) end
      add_bytes(t, c, num(dec(d.fields.size)) - old_size)
      local seq = old.seq
      if not seq or old.status == "deleted" then seq = version end
      if old.status and not TERMINAL[old.status] then
        job_entry(old.job_id, d.id, "superseded", now, nil)
      end
      redis.call("DEL", key)
      local args = {}
      for name, value in pairs(d.fields) do
        table.insert(args, name)
        table.insert(args, value)
      end
      redis.call("HSET", key, "id", enc(d.id), "version", enc(version), "seq", enc(seq),
        "status", enc(d.status), "job_id", enc(job), "owner", enc(""), "crashes", enc(0),
        "updated_at", enc(tonumber(now)), unpack(args))
      if prev then
        -- Until this version is indexed the old one's points serve: the record says so.
        redis.call("HSET", key, "prev", enc(prev), "chunk_count", prev.chunk_count or enc(0),
          "indexed_hash", prev.indexed_hash or enc(cjson.null))
      end
      reindex(t, c, d.id, seq, old.status, d.status)
      set_running(t, c, d.id, "", now)
      sync_expiry(t, c, d.id, d.fields.expires_at)
      redis.call("HSET", jd, d.id, d.status)
      redis.call("HINCRBY", jc, d.status, 1)
      entries = entries + 1
      if d.status == "failed" then
        redis.call("HINCRBY", jc, "_done", 1)
        if d.error and d.error ~= "" then redis.call("HSET", P .. "joberr:" .. job, d.id, d.error) end
        doc_failed_event(job, d.id, d.error, now)
      end
      table.insert(out, d.id)
      table.insert(out, version)
    end
  end
  local done = tonumber(redis.call("HGET", jc, "_done") or "0")
  if done >= entries then finish_job(job, now) end
  return out
end

-- transition(t, c, id, expect, to, now, from, owner_mode, err, field, json, ...)
-- expect: "v:<version>" or "job:<job id>"; from: comma list of statuses or "*" (any
-- unfinished); owner_mode: "keep" | "clear" | "claim:<owner>" (free or dead owner only) |
-- "mine:<owner>" (still claimed by owner; cleared) | "hold:<owner>" (still claimed; kept).
-- Returns {1, version} when applied, {0, reason} when refused.
if op == "transition" then
  local t, c, id, expect, to, now, from, mode, err = ARGV[2], ARGV[3], ARGV[4], ARGV[5],
    ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
  local key = dkey(t, c, id)
  local doc = get(key, {"status", "version", "job_id", "owner", "seq", "prev"})
  if not doc.status then return {0, "gone"} end
  local kind, want = string.match(expect, "^(%a+):(.*)$")
  if kind == "v" and tostring(doc.version) ~= want then return {0, "stale"} end
  if kind == "job" and doc.job_id ~= want then return {0, "stale"} end
  if from == "*" then
    if TERMINAL[doc.status] then return {0, "finished"} end
  else
    local ok = false
    for s in string.gmatch(from, "[^,]+") do if s == doc.status then ok = true end end
    if not ok then return {0, "status:" .. doc.status} end
  end
  local mkind, who = string.match(mode, "^(%a+):?(.*)$")
  local owner = doc.owner
  if mkind == "claim" then
    if owner ~= "" and owner ~= who and alive(owner) then return {0, "owned"} end
    owner = who
  elseif mkind == "mine" or mkind == "hold" then
    if owner ~= who then return {0, "not_owner"} end
    if mkind == "mine" then owner = "" end
  elseif mkind == "clear" then
    owner = ""
  end
  local args = {}
  for i = 11, #ARGV - 1, 2 do
    table.insert(args, ARGV[i])
    table.insert(args, ARGV[i + 1])
  end
  if TERMINAL[to] then owner = "" end
  if RESTORES[to] and doc.prev then
    job_entry(doc.job_id, id, to, now, err)
    restore(t, c, id, key, doc.status, doc.prev, now)
    return {1, doc.version}
  end
  redis.call("HSET", key, "status", enc(to), "owner", enc(owner),
    "updated_at", enc(tonumber(now)), unpack(args))
  if TERMINAL[to] then redis.call("HDEL", key, "prev") end
  if to ~= doc.status then reindex(t, c, id, doc.seq, doc.status, to) end
  set_running(t, c, id, owner, now)
  job_entry(doc.job_id, id, to, now, err)
  return {1, doc.version}
end

-- delete(t, c, id, now): a tombstone at a new version; the store write removes the points.
-- Returns the new version, or 0 when there is no such (undeleted) document.
if op == "delete" then
  return tombstone(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
end

-- expire(t, c, id, now): the delete of a document whose expiry passed (checked here, so a
-- re-upload that moved it on since the sweep read the index is left alone). Returns the
-- tombstone's version, or 0.
if op == "expire" then
  local t, c, id, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local at = redis.call("ZSCORE", P .. "expiry:" .. t .. ":" .. c, id)
  if not at or tonumber(at) > tonumber(now) then return 0 end
  return tombstone(t, c, id, now)
end

-- forget(t, c, id, version): drop a tombstone once its points are gone (same version only).
if op == "forget" then
  local t, c, id, version = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local key = dkey(t, c, id)
  local doc = get(key, {"status", "version"})
  if doc.status ~= "deleted" or tostring(doc.version) ~= version then return 0 end
  redis.call("DEL", key)
  reindex(t, c, id, 0, "deleted", nil)
  return 1
end

-- reap(t, c, id, now, max_crashes): a claimed document whose owner is gone is queued
-- again, or failed as worker_crashed after max_crashes. Returns {"alive"|"gone"|
-- "requeued"|"failed", version}.
if op == "reap" then
  local t, c, id, now, max = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
  local key = dkey(t, c, id)
  local doc = get(key, {"status", "version", "job_id", "owner", "seq", "crashes", "prev"})
  if not doc.status or TERMINAL[doc.status] or doc.owner == "" then
    redis.call("ZREM", P .. "running", ref(t, c, id))
    return {"gone", 0}
  end
  if alive(doc.owner) then return {"alive", doc.version} end
  local crashes = (doc.crashes or 0) + 1
  local to, result = "queued", "requeued"
  if crashes >= max then to, result = "failed", "failed" end
  local message = "its worker died " .. crashes .. " times while processing it (last state "
    .. doc.status .. ")"
  local err = enc({reason = "worker_crashed", message = message})
  if to == "failed" and doc.prev then
    job_entry(doc.job_id, id, to, now, err)
    restore(t, c, id, key, doc.status, doc.prev, now)
    return {result, doc.version}
  end
  redis.call("HSET", key, "status", enc(to), "owner", enc(""), "crashes", enc(crashes),
    "updated_at", enc(tonumber(now)))
  if to == "failed" then
    redis.call("HSET", key, "error_reason", enc("worker_crashed"), "error_message", enc(message))
  end
  reindex(t, c, id, doc.seq, doc.status, to)
  redis.call("ZREM", P .. "running", ref(t, c, id))
  job_entry(doc.job_id, id, to, now, err)
  return {result, doc.version}
end

-- drop(t, c, id, now): the collection is being deleted; its unfinished job entries end.
if op == "drop" then
  local t, c, id, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local key = dkey(t, c, id)
  local doc = get(key, {"status", "job_id", "seq", "size"})
  if not doc.status then return 0 end
  if live(doc.status) then add_bytes(t, c, -num(doc.size)) end
  job_entry(doc.job_id, id, "deleted", now, nil)
  reindex(t, c, id, doc.seq, doc.status, nil)
  redis.call("ZREM", P .. "running", ref(t, c, id))
  redis.call("ZREM", P .. "expiry:" .. t .. ":" .. c, id)
  redis.call("DEL", key)
  return 1
end

return redis.error_reply("unknown lifecycle op " .. tostring(op))
