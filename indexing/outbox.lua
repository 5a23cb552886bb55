-- The webhook outbox: the part of Sieve's scripts that turns a state change into deliveries.
--
-- It is prepended to every script whose change causes an event (lifecycle.lua, the
-- re-index's finish, indexing/webhooks.py's emit), so the deliveries are written in the
-- same atomic step as the change itself: once Redis acknowledged the change (AOF), its
-- events survive the death of any process.
--
-- Layout (W = "sieve:wh:"):
--   W.."subs:"..t..":"..c   hash subscription id -> its record (JSON, with the secret)
--   W.."conf"               hash outbox_max, log_max, log_ttl_ms (the API writes it at start)
--   W.."seq"                counter: every delivery takes the next value as its id
--   W.."due"                zset delivery id -> when it is due (ms): the outbox
--   W.."task:"..id          hash: sub, tenant, collection, msg, type, data, created, attempts
--   W.."log:"..sub          list: the subscription's delivery attempts (JSON), newest first
--   W.."dropped"            counter: events not written because the outbox was full
local W = "sieve:wh:"

-- Used until the API wrote its settings (SIEVE_WEBHOOK_*; the same defaults).
local WH_DEFAULTS = {outbox_max = 100000, log_max = 200, log_ttl_ms = 604800000}

local function wh_conf(name)
  local v = redis.call("HGET", W .. "conf", name)
  if v then return tonumber(v) end
  return WH_DEFAULTS[name]
end

-- Add a delivery attempt to a subscription's log (bounded, expiring).
local function wh_log(sub, entry)
  local key = W .. "log:" .. sub
  redis.call("LPUSH", key, cjson.encode(entry))
  redis.call("LTRIM", key, 0, wh_conf("log_max") - 1)
  redis.call("PEXPIRE", key, wh_conf("log_ttl_ms"))
end

-- Queue event `etype` (with `data`, a table) for every subscription of t/c that wants it.
-- Returns how many deliveries were queued.
local function wh_emit(t, c, etype, data, now)
  local subs = W .. "subs:" .. t .. ":" .. c
  if redis.call("EXISTS", subs) == 0 then return 0 end
  local raw = redis.call("HGETALL", subs)
  local encoded = cjson.encode(data)
  local queued = 0
  for i = 2, #raw, 2 do
    local sub = cjson.decode(raw[i])
    local wants = false
    for _, e in ipairs(sub.events) do if e == etype then wants = true end end
    if wants then
      if redis.call("ZCARD", W .. "due") >= wh_conf("outbox_max") then
        redis.call("INCR", W .. "dropped")
        wh_log(sub.id, {status = "dropped", type = etype, at = tonumber(now),
          error = "outbox_full", attempt = 0})
      else
        local id = tostring(redis.call("INCR", W .. "seq"))
        redis.call("HSET", W .. "task:" .. id, "sub", sub.id, "tenant", t, "collection", c,
          "msg", "msg_" .. id, "type", etype, "data", encoded, "created", now, "attempts", 0)
        redis.call("ZADD", W .. "due", math.floor(tonumber(now) * 1000), id)
        queued = queued + 1
      end
    end
  end
  return queued
end
