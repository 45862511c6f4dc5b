"""Lua scripts: every check-then-set on notices runs atomically inside Redis.

Key names inside the scripts are derived from the prefix in ARGV[1] the same way as in
``keys.py`` (``<prefix>:n:<id>``, ``<prefix>:n:<id>:h`` ...).
"""

from __future__ import annotations

# Shared helpers prepended to the scripts that change a notice's status.
_TRANSITION = r"""
-- Ranks keep a notice from moving backwards when events arrive out of order. A status in
-- HARD is final. SOFT statuses end one call attempt; only a later attempt moves on from them.
local RANK = {queued=0, submitted=1, dialing=1, answered=2, delivered=3, undeliverable=3,
              expired=3, rejected=3, failed=3, acknowledged=3, disputed=3, no_input=3, busy=3,
              no_answer=3}
local HARD = {delivered=1, undeliverable=1, expired=1, rejected=1, acknowledged=1,
              disputed=1, no_input=1}
local function transition(prefix, id, status, at, detail)
  local nkey = prefix .. ':n:' .. id
  local cur = redis.call('HMGET', nkey, 'status', 'callback_url', 'key_id', 'kind', 'channel',
                         'attempt')
  if not cur[1] then return 0 end
  local attempt = tonumber(detail['attempt'] or 0) or 0
  local cur_attempt = tonumber(cur[6] or 0) or 0
  local new_attempt = attempt > cur_attempt
  if HARD[cur[1]] then return 0 end
  if not new_attempt then
    local old, new = RANK[cur[1]] or 0, RANK[status] or 0
    if new < old or cur[1] == status or (old == 3 and cur[1] ~= 'failed') then return 0 end
    if cur[1] == 'failed' then return 0 end
  end
  redis.call('HSET', nkey, 'status', status, 'updated_at', at)
  if new_attempt then redis.call('HSET', nkey, 'attempt', attempt) end
  local entry = cjson.encode({status=status, at=at, detail=detail})
  redis.call('RPUSH', nkey .. ':h', entry)
  if cur[2] and cur[2] ~= '' then
    local body = cjson.encode({id=id, kind=cur[4], channel=cur[5], status=status, at=at,
                               detail=detail})
    redis.call('XADD', prefix .. ':q:webhooks', '*', 'id', id, 'key_id', cur[3],
               'url', cur[2], 'body', body, 'attempt', '1', 'first_at', at)
  end
  return 1
end
"""

CREATE = r"""
-- KEYS[1]: idempotency key or ''.
-- ARGV: prefix, id, body_hash, idem_ttl_s, retention_s, record_json, history_json, queue,
--       queue_fields_json
local prefix, id = ARGV[1], ARGV[2]
if KEYS[1] ~= '' then
  local prev = redis.call('HMGET', KEYS[1], 'hash', 'id')
  if prev[2] then
    if prev[1] == ARGV[3] then return {'existing', prev[2]} end
    return {'conflict', prev[2]}
  end
end
local nkey = prefix .. ':n:' .. id
local rec = cjson.decode(ARGV[6])
local flat = {}
for k, v in pairs(rec) do flat[#flat + 1] = k; flat[#flat + 1] = tostring(v) end
redis.call('HSET', nkey, unpack(flat))
redis.call('RPUSH', nkey .. ':h', ARGV[7])
local ttl = tonumber(ARGV[5])
redis.call('EXPIRE', nkey, ttl)
redis.call('EXPIRE', nkey .. ':h', ttl)
local q = cjson.decode(ARGV[9])
local qflat = {}
for k, v in pairs(q) do qflat[#qflat + 1] = k; qflat[#qflat + 1] = tostring(v) end
redis.call('XADD', ARGV[8], '*', unpack(qflat))
if KEYS[1] ~= '' then
  redis.call('HSET', KEYS[1], 'hash', ARGV[3], 'id', id)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
-- Optional per-plate reminder count over a window (three-strike policy), counted only for a
-- new notice, so an idempotent replay does not count twice.
if ARGV[10] and ARGV[10] ~= '' then
  local now, window = tonumber(ARGV[11]), tonumber(ARGV[12])
  redis.call('ZREMRANGEBYSCORE', ARGV[10], '-inf', now - window)
  redis.call('ZADD', ARGV[10], now, id)
  redis.call('PEXPIRE', ARGV[10], window)
  local n = redis.call('ZCARD', ARGV[10])
  redis.call('HSET', nkey, 'reminder_number', n, 'penalty_due', n >= 3 and '1' or '0')
  return {'created', id, n}
end
return {'created', id}
"""

TRANSITION = (
    _TRANSITION
    + r"""
-- ARGV: prefix, id, status, at, detail_json
return transition(ARGV[1], ARGV[2], ARGV[3], ARGV[4], cjson.decode(ARGV[5]))
"""
)

_RECEIPT = r"""
local function apply_receipt(prefix, notice_id, idx, status, at, detail)
  local nkey = prefix .. ':n:' .. notice_id
  redis.call('HSET', nkey .. ':dlr', idx, status)
  local ttl = redis.call('TTL', nkey)
  if ttl > 0 then redis.call('EXPIRE', nkey .. ':dlr', ttl) end
  local parts = tonumber(redis.call('HGET', nkey, 'parts') or '1')
  local got = redis.call('HGETALL', nkey .. ':dlr')
  if #got / 2 < parts then return 'partial' end
  local overall = 'delivered'
  for i = 2, #got, 2 do
    if got[i] ~= 'delivered' then overall = got[i] end
  end
  detail['parts'] = parts
  transition(prefix, notice_id, overall, at, detail)
  return 'final'
end
"""

PART_SUBMITTED = (
    _TRANSITION
    + _RECEIPT
    + r"""
-- ARGV: prefix, notice_id, part_index, smsc_message_id, at, mapping_ttl_s
local prefix, id, idx, mid, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local nkey = prefix .. ':n:' .. id
redis.call('SET', prefix .. ':smsc:' .. mid, id .. '|' .. idx, 'EX', tonumber(ARGV[6]))
redis.call('HSET', nkey .. ':sub', idx, mid)
local ttl = redis.call('TTL', nkey)
if ttl > 0 then redis.call('EXPIRE', nkey .. ':sub', ttl) end
local parts = tonumber(redis.call('HGET', nkey, 'parts') or '1')
local done = 0
if redis.call('HLEN', nkey .. ':sub') >= parts then
  done = 1
  local ids = redis.call('HVALS', nkey .. ':sub')
  transition(prefix, id, 'submitted', at, {message_ids=ids})
end
-- A receipt that overtook this bookkeeping (another bind, another process) was parked.
local early = redis.call('GET', prefix .. ':early:' .. mid)
if early then
  redis.call('DEL', prefix .. ':early:' .. mid)
  local e = cjson.decode(early)
  apply_receipt(prefix, id, idx, e['status'], e['at'], e['detail'])
end
return done
"""
)

RECEIPT = (
    _TRANSITION
    + _RECEIPT
    + r"""
-- ARGV: prefix, smsc_message_id, status, at, detail_json, early_ttl_s
local prefix, mid = ARGV[1], ARGV[2]
local map = redis.call('GET', prefix .. ':smsc:' .. mid)
if not map then
  redis.call('SET', prefix .. ':early:' .. mid,
             cjson.encode({status=ARGV[3], at=ARGV[4], detail=cjson.decode(ARGV[5])}),
             'EX', tonumber(ARGV[6]))
  return {'early', ''}
end
local sep = string.find(map, '|', 1, true)
local id, idx = string.sub(map, 1, sep - 1), string.sub(map, sep + 1)
return {apply_receipt(prefix, id, idx, ARGV[3], ARGV[4], cjson.decode(ARGV[5])), id}
"""
)

GCRA = r"""
-- KEYS[1]: limiter key. ARGV: rate_per_s, burst, want.
-- Grants up to `want` tokens; returns {granted, wait_ms_until_next_token}.
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = 1000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local avail = math.floor((now + burst * interval - tat) / interval)
if avail <= 0 then
  return {0, math.ceil(tat - burst * interval + interval - now)}
end
local granted = math.min(avail, want)
tat = tat + granted * interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return {granted, 0}
"""

WEBHOOK_DUE = r"""
-- KEYS[1]: retry zset, KEYS[2]: webhook stream. ARGV: now_ms, max.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, item in ipairs(due) do
  local f = cjson.decode(item)
  redis.call('XADD', KEYS[2], '*', 'id', f.id, 'key_id', f.key_id, 'url', f.url,
             'body', f.body, 'attempt', tostring(f.attempt), 'first_at', f.first_at)
  redis.call('ZREM', KEYS[1], item)
end
return #due
"""

CALL_SLOT = r"""
-- KEYS[1]: sorted set of calls in progress, scored by when their slot expires.
-- ARGV: member, ttl_ms, max. A slot left by a process that died expires by itself.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
