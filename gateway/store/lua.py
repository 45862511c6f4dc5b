"""Lua scripts: every check-then-set on notices runs atomically inside Redis.

Key names inside the scripts are derived from the prefix in ARGV[1] the same way as in
``keys.py`` (``<prefix>:n:<id>``, ``<prefix>:n:<id>:h`` ...).
"""

from __future__ import annotations

# Shared helpers prepended to the scripts that change a notice's status.
_JOBS = r"""
-- Reminder jobs: per-status counts, and the job's end once every recipient has an outcome.
local JOB_FINAL = {delivered=1, undeliverable=1, expired=1, rejected=1, failed=1, sent=1,
                   cancelled=1}
-- A call's busy/no_answer/failed end one attempt only; these end the notice.
local VOICE_FINAL = {listened=1, no_input=1, unreachable=1, cancelled=1}
local function job_maybe_finish(prefix, job, done, at)
  local jkey = prefix .. ':job:' .. job
  local j = redis.call('HMGET', jkey, 'total', 'status', 'callback_url', 'key_id', 'channel')
  if j[2] ~= 'running' and j[2] ~= 'waiting_window' then return end
  if done < tonumber(j[1] or '0') then return end
  redis.call('HSET', jkey, 'status', 'finished', 'finished_at', at)
  redis.call('ZREM', prefix .. ':jobs:active', job)
  if j[3] and j[3] ~= '' then
    local flat = redis.call('HGETALL', jkey .. ':counts')
    local counts = {}
    for i = 1, #flat, 2 do
      local n = tonumber(flat[i + 1])
      if n ~= 0 then counts[flat[i]] = n end
    end
    local body = cjson.encode({id=job, kind='reminder_job', channel=j[5], status='finished',
                               at=at, detail={total=tonumber(j[1]), counts=counts}})
    redis.call('XADD', prefix .. ':q:webhooks', '*', 'id', job, 'key_id', j[4],
               'url', j[3], 'body', body, 'attempt', '1', 'first_at', at)
  end
end
-- Scripts that apply many events at once set PROGRESS to a table: the counts then add up
-- there and flush_progress writes them once, instead of three writes per event.
local PROGRESS = nil
local function job_progress(prefix, job, old, new, at, channel)
  local final = JOB_FINAL
  if channel == 'voice' then final = VOICE_FINAL end
  local ends = final[new] and not final[old]
  if PROGRESS then
    local p = PROGRESS[job]
    if not p then
      p = {counts={}, done=0}
      PROGRESS[job] = p
    end
    p.counts[old] = (p.counts[old] or 0) - 1
    p.counts[new] = (p.counts[new] or 0) + 1
    if ends then p.done = p.done + 1 end
    return
  end
  local ckey = prefix .. ':job:' .. job .. ':counts'
  redis.call('HINCRBY', ckey, old, -1)
  redis.call('HINCRBY', ckey, new, 1)
  if ends then
    local done = redis.call('HINCRBY', prefix .. ':job:' .. job, 'done', 1)
    job_maybe_finish(prefix, job, done, at)
  end
end
local function flush_progress(prefix, at)
  for job, p in pairs(PROGRESS) do
    local ckey = prefix .. ':job:' .. job .. ':counts'
    for status, n in pairs(p.counts) do
      if n ~= 0 then redis.call('HINCRBY', ckey, status, n) end
    end
    if p.done > 0 then
      local done = redis.call('HINCRBY', prefix .. ':job:' .. job, 'done', p.done)
      job_maybe_finish(prefix, job, done, at)
    end
  end
  PROGRESS = {}
end
"""

# Shared helpers prepended to the scripts that change a notice's status.
_TRANSITION = (
    _JOBS
    + r"""
-- Ranks keep a notice from moving backwards when events arrive out of order. A status in
-- HARD is final. SOFT statuses end one call attempt; only a later attempt moves on from them.
local RANK = {queued=0, submitted=1, dialing=1, answered=2, delivered=3, undeliverable=3,
              expired=3, rejected=3, failed=3, acknowledged=3, disputed=3, no_input=3, busy=3,
              no_answer=3, sent=3, cancelled=3, listened=3, unreachable=3}
local HARD = {delivered=1, undeliverable=1, expired=1, rejected=1, acknowledged=1,
              disputed=1, no_input=1, sent=1, cancelled=1, listened=1, unreachable=1}
-- A notice's fields that a transition reads (and the part count, for receipts).
local function notice_state(nkey)
  return redis.call('HMGET', nkey, 'status', 'callback_url', 'key_id', 'kind', 'channel',
                    'attempt', 'job', 'parts')
end
-- cur: the notice_state already read by the caller, or nil.
local function transition(prefix, id, status, at, detail, cur)
  local nkey = prefix .. ':n:' .. id
  cur = cur or notice_state(nkey)
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
  if cur[7] then job_progress(prefix, cur[7], cur[1], status, at, cur[5]) end
  if cur[2] and cur[2] ~= '' then
    local body = cjson.encode({id=id, kind=cur[4], channel=cur[5], status=status, at=at,
                               detail=detail})
    redis.call('XADD', prefix .. ':q:webhooks', '*', 'id', id, 'key_id', cur[3],
               'url', cur[2], 'body', body, 'attempt', '1', 'first_at', at)
  end
  return 1
end
"""
)

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

SMS_EVENTS = (
    _TRANSITION
    + r"""
-- What the SMS workers learn from the SMSC, many events in one call, in the order they
-- happened. ARGV: prefix, mapping_ttl_s, early_ttl_s, then one JSON array of the events'
-- fields, six per event (one argument rather than six per event: the client packs, and Redis
-- parses, one string instead of thousands):
--   's', notice_id, part_index, smsc_message_id, parts, at    a part got its carrier id
--   'r', smsc_message_id, status, at, stat, err               a final delivery receipt
-- Returns one result per event: for 's', 1 once every part of the notice has its id, else 0;
-- for 'r', 'final', 'partial' (other parts still owe their receipt) or 'early' (the receipt
-- overtook the carrier id's bookkeeping: it is parked and applied when the id arrives).
-- A single-part notice keeps no per-part hashes: its part's outcome is the notice's.
local prefix, map_ttl, early_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local W = 6
local E = cjson.decode(ARGV[4])
local n = #E / W
PROGRESS = {}
local at = ''

local function apply_receipt(id, idx, status, rat, detail)
  local nkey = prefix .. ':n:' .. id
  local cur = notice_state(nkey)
  local parts = tonumber(cur[8] or '1') or 1
  detail['parts'] = parts
  if parts <= 1 then
    transition(prefix, id, status, rat, detail, cur)
    return 'final'
  end
  redis.call('HSET', nkey .. ':dlr', idx, status)
  local ttl = redis.call('TTL', nkey)
  if ttl > 0 then redis.call('EXPIRE', nkey .. ':dlr', ttl) end
  local got = redis.call('HGETALL', nkey .. ':dlr')
  if #got / 2 < parts then return 'partial' end
  local overall = 'delivered'
  for i = 2, #got, 2 do
    if got[i] ~= 'delivered' then overall = got[i] end
  end
  transition(prefix, id, overall, rat, detail, cur)
  return 'final'
end

local function part_submitted(id, idx, mid, parts, sat)
  if parts <= 1 then
    transition(prefix, id, 'submitted', sat, {message_ids={mid}})
    return 1
  end
  local nkey = prefix .. ':n:' .. id
  redis.call('HSET', nkey .. ':sub', idx, mid)
  local ttl = redis.call('TTL', nkey)
  if ttl > 0 then redis.call('EXPIRE', nkey .. ':sub', ttl) end
  if redis.call('HLEN', nkey .. ':sub') < parts then return 0 end
  transition(prefix, id, 'submitted', sat, {message_ids=redis.call('HVALS', nkey .. ':sub')})
  return 1
end

-- One read each for every parked receipt and every carrier id mapping the batch may need.
local early_keys, map_keys = {}, {}
for e = 0, n - 1 do
  local b = e * W + 1
  if E[b] == 's' then
    early_keys[#early_keys + 1] = prefix .. ':early:' .. E[b + 3]
  else
    map_keys[#map_keys + 1] = prefix .. ':smsc:' .. E[b + 1]
  end
end
local function found(keys)
  local values = {}
  if #keys == 0 then return values end
  local got = redis.call('MGET', unpack(keys))
  for i = 1, #keys do
    if got[i] then values[keys[i]] = got[i] end
  end
  return values
end
local early, mapped = found(early_keys), found(map_keys)

local out = {}
for e = 0, n - 1 do
  local b = e * W + 1
  if E[b] == 's' then
    local id, idx, mid, parts = E[b + 1], E[b + 2], E[b + 3], tonumber(E[b + 4])
    at = E[b + 5]
    local mkey = prefix .. ':smsc:' .. mid
    mapped[mkey] = id .. '|' .. idx
    redis.call('SET', mkey, mapped[mkey], 'EX', map_ttl)
    out[#out + 1] = part_submitted(id, idx, mid, parts, at)
    local ekey = prefix .. ':early:' .. mid
    local parked = early[ekey]
    if parked then
      early[ekey] = nil
      redis.call('DEL', ekey)
      local r = cjson.decode(parked)
      apply_receipt(id, idx, r['status'], r['at'], r['detail'])
    end
  else
    local mid, status = E[b + 1], E[b + 2]
    local detail = {stat=E[b + 4], err=E[b + 5], message_id=mid}
    at = E[b + 3]
    local map = mapped[prefix .. ':smsc:' .. mid]
    if not map then
      local ekey = prefix .. ':early:' .. mid
      early[ekey] = cjson.encode({status=status, at=at, detail=detail})
      redis.call('SET', ekey, early[ekey], 'EX', early_ttl)
      out[#out + 1] = 'early'
    else
      local sep = string.find(map, '|', 1, true)
      out[#out + 1] = apply_receipt(string.sub(map, 1, sep - 1), string.sub(map, sep + 1),
                                    status, at, detail)
    end
  end
end
flush_progress(prefix, at)
return out
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

RELEASE_IF_OWNER = r"""
-- KEYS[1]: a lease. ARGV[1]: who releases it. Deleted only if that one still holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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

# -- binding requests ------------------------------------------------------------------------
# Every step of a binding request, and the binding it makes, is one script call together with
# its audit entries: the global list <prefix>:binding-audit and the plate's own,
# <prefix>:binding-audit:<plate>.
_AUDIT = r"""
local function audit(prefix, plate, base, event, extra)
  local e = {}
  for k, v in pairs(base) do e[k] = v end
  e['event'] = event
  if plate ~= '' then e['plate'] = plate end
  for k, v in pairs(extra or {}) do e[k] = v end
  local s = cjson.encode(e)
  redis.call('LPUSH', prefix .. ':binding-audit', s)
  redis.call('LTRIM', prefix .. ':binding-audit', 0, 999999)
  if plate ~= '' then
    redis.call('LPUSH', prefix .. ':binding-audit:' .. plate, s)
    redis.call('LTRIM', prefix .. ':binding-audit:' .. plate, 0, 9999)
  end
end
"""

BREQ_CREATE = (
    _AUDIT
    + r"""
-- KEYS: request, per-phone daily counter.
-- ARGV: prefix, plate, daily limit, request ttl s, counter ttl s, audit base json, record json
local prefix, plate = ARGV[1], ARGV[2]
local base = cjson.decode(ARGV[6])
if redis.call('EXISTS', KEYS[1]) == 1 then return {'collision', 0} end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
if n > tonumber(ARGV[3]) then
  redis.call('DECR', KEYS[2])
  base['ref'] = nil
  audit(prefix, plate, base, 'request_refused', {reason='daily_limit'})
  return {'limit', n - 1}
end
local rec = cjson.decode(ARGV[7])
for k, v in pairs(rec) do redis.call('HSET', KEYS[1], k, tostring(v)) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
audit(prefix, plate, base, 'requested', {})
return {'ok', n}
"""
)

BREQ_VERIFY = (
    _AUDIT
    + r"""
-- KEYS: request. ARGV: prefix, mode (check|confirm), code hash, now ms, max attempts, at,
--       audit base json. A right code in 'check' mode changes nothing; in 'confirm' mode it
--       makes the binding. A wrong one spends an attempt; the last one fails the request.
local prefix, mode = ARGV[1], ARGV[2]
local base = cjson.decode(ARGV[7])
local r = redis.call('HMGET', KEYS[1], 'status', 'code_hash', 'expires_ms', 'attempts',
                     'plate', 'phone', 'email', 'agent_id', 'key_id', 'ref')
if not r[1] then
  audit(prefix, '', base, 'verify_refused', {reason='unknown_reference'})
  return {'unknown', '0', ''}
end
local plate = r[5]
if r[1] ~= 'pending' then
  audit(prefix, plate, base, 'verify_refused', {reason='not_pending', status=r[1]})
  return {'not_pending', '0', r[1]}
end
if tonumber(ARGV[4]) > tonumber(r[3]) then
  redis.call('HSET', KEYS[1], 'status', 'expired', 'closed_at', ARGV[6])
  audit(prefix, plate, base, 'expired', {})
  return {'expired', '0', 'expired'}
end
local max = tonumber(ARGV[5])
local attempts = tonumber(r[4] or '0') or 0
if ARGV[3] ~= r[2] then
  attempts = attempts + 1
  redis.call('HSET', KEYS[1], 'attempts', attempts)
  if attempts >= max then
    redis.call('HSET', KEYS[1], 'status', 'failed', 'closed_at', ARGV[6])
    audit(prefix, plate, base, 'failed', {reason='too_many_wrong_codes', attempts=attempts})
    return {'failed', '0', 'failed'}
  end
  audit(prefix, plate, base, 'code_wrong', {attempts_left=max - attempts})
  return {'wrong', tostring(max - attempts), 'pending'}
end
if mode == 'check' then
  audit(prefix, plate, base, 'code_verified', {})
  return {'ok', tostring(max - attempts), 'pending'}
end
local bkey = prefix .. ':binding:' .. plate
local previous = redis.call('HGET', bkey, 'phone')
redis.call('DEL', bkey)
redis.call('HSET', bkey, 'plate', plate, 'phone', r[6], 'email', r[7] or '',
           'created_at', ARGV[6], 'created_by', r[9] or '', 'channel', base['channel'],
           'agent_id', r[8] or '', 'caller_id', base['caller_id'] or '', 'ref', r[10])
redis.call('HSET', KEYS[1], 'status', 'confirmed', 'closed_at', ARGV[6],
           'confirmed_channel', base['channel'])
audit(prefix, plate, base, 'confirmed', {})
if previous then
  audit(prefix, plate, base, 'replaced', {phone=r[6], previous_phone=previous})
  return {'confirmed', '1', 'confirmed'}
end
audit(prefix, plate, base, 'created', {phone=r[6]})
return {'confirmed', '0', 'confirmed'}
"""
)

BREQ_CLOSE = (
    _AUDIT
    + r"""
-- KEYS: request. ARGV: prefix, new status, at, audit base json, reason.
local prefix = ARGV[1]
local base = cjson.decode(ARGV[4])
local r = redis.call('HMGET', KEYS[1], 'status', 'plate')
if not r[1] then return 'unknown' end
if r[1] ~= 'pending' then return r[1] end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'closed_at', ARGV[3])
audit(prefix, r[2], base, ARGV[2], {reason=ARGV[5]})
return 'ok'
"""
)

BINDING_REMOVE_IF_PHONE = (
    _AUDIT
    + r"""
-- ARGV: prefix, plate, the phone that asks (its caller id), audit base json.
local prefix, plate = ARGV[1], ARGV[2]
local base = cjson.decode(ARGV[4])
local bkey = prefix .. ':binding:' .. plate
local phone = redis.call('HGET', bkey, 'phone')
if not phone then
  audit(prefix, plate, base, 'removal_refused', {reason='no_binding'})
  return 'no_binding'
end
if phone ~= ARGV[3] then
  audit(prefix, plate, base, 'removal_refused', {reason='caller_is_not_the_bound_phone'})
  return 'refused'
end
redis.call('DEL', bkey)
audit(prefix, plate, base, 'removed', {phone=phone})
return 'removed'
"""
)


# -- reminder jobs ---------------------------------------------------------------------------
JOB_ADMIT = (
    _JOBS
    + r"""
-- Rows of a job, in row order, in one call. Idempotent by row: a dispatcher that restarts
-- re-reads rows below the cursor and they are skipped here ('seen').
-- ARGV: prefix, job, first row, at, retention_s, day, daily cap, dedup ttl s, queue,
--       opt-out applies ('1'|'0'), key_id, template, template_version, subject (email),
--       channel, then one JSON array of the rows' fields, five per row: notice_id, to
--       (national number or email), queue destination, text, parts.
-- Returns one status per row: seen, queued, opted_out, capped or duplicate; or 'gap' for every
-- row when the cursor has not reached this slice (an earlier slice sent in the same pipeline
-- did not land): nothing is admitted past a hole, and the next step reads from the cursor.
local prefix, job, first = ARGV[1], ARGV[2], tonumber(ARGV[3])
local at, retention, day = ARGV[4], ARGV[5], ARGV[6]
local cap, dedup, queue = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local template, channel = ARGV[12], ARGV[15]
local W = 5
local E = cjson.decode(ARGV[16])
local n = #E / W
local jkey = prefix .. ':job:' .. job
local out = {}
local from = tonumber(redis.call('HGET', jkey, 'cursor') or '0') - first
if from < 0 then
  for i = 1, n do out[i] = 'gap' end
  return out
end
for i = 0, math.min(from, n) - 1 do out[#out + 1] = 'seen' end
if from >= n then return out end
redis.call('HSET', jkey, 'cursor', first + n)

local tos = {}
for i = from, n - 1 do tos[#tos + 1] = E[i * W + 2] end
local opted = {}
if ARGV[10] == '1' then opted = redis.call('SMISMEMBER', prefix .. ':optout', unpack(tos)) end
local sent_today = {}
if cap > 0 then
  local ks = {}
  for k, to in ipairs(tos) do ks[k] = prefix .. ':cap:' .. to .. ':' .. day end
  local got = redis.call('MGET', unpack(ks))
  for k, to in ipairs(tos) do sent_today[to] = tonumber(got[k] or '0') or 0 end
end

local counts, skipped = {}, 0
for i = from, n - 1 do
  local b = i * W
  local id, to = E[b + 1], E[b + 2]
  local status = 'queued'
  if opted[i - from + 1] == 1 then
    status = 'opted_out'
  elseif cap > 0 and sent_today[to] >= cap then
    status = 'capped'
  elseif dedup > 0 and not redis.call('SET', prefix .. ':dedup:' .. template .. ':' .. to, job,
                                      'NX', 'EX', dedup) then
    status = 'duplicate'
  end
  if status == 'queued' then
    if cap > 0 then
      sent_today[to] = sent_today[to] + 1
      local capkey = prefix .. ':cap:' .. to .. ':' .. day
      if redis.call('INCR', capkey) == 1 then redis.call('EXPIRE', capkey, 172800) end
    end
    local nkey = prefix .. ':n:' .. id
    redis.call('HSET', nkey, 'id', id, 'kind', 'reminder', 'channel', channel,
               'status', 'queued', 'to', to, 'parts', E[b + 5], 'key_id', ARGV[11],
               'job', job, 'template', template, 'template_version', ARGV[13],
               'created_at', at)
    if channel == 'voice' then redis.call('HSET', nkey, 'text', E[b + 4]) end
    redis.call('RPUSH', nkey .. ':h', cjson.encode({status='queued', at=at, detail={job=job}}))
    redis.call('EXPIRE', nkey, retention)
    redis.call('EXPIRE', nkey .. ':h', retention)
    redis.call('XADD', queue, '*', 'id', id, 'to', E[b + 3], 'text', E[b + 4],
               'job', job, 'subject', ARGV[14])
  else
    skipped = skipped + 1
  end
  counts[status] = (counts[status] or 0) + 1
  out[#out + 1] = status
end
local ckey = jkey .. ':counts'
for status, c in pairs(counts) do redis.call('HINCRBY', ckey, status, c) end
if skipped > 0 then
  job_maybe_finish(prefix, job, redis.call('HINCRBY', jkey, 'done', skipped), at)
end
return out
"""
)
