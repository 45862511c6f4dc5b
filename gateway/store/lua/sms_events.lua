-- What the SMS workers learn from the SMSC, many events in one call, in the order they
-- happened. The events' fields are one JSON array, seven per event (one argument rather than
-- seven per event: the client packs, and Redis parses, one string instead of thousands):
--   's', notice_id, part_index, smsc_message_id, parts, at, tail    a part got its carrier id
--   'r', {id, link, forms}, status, at, stat, err, tail             a final delivery receipt
-- tail: the recipient's last digits (gateway/sms/carrier_ids.py recipient_tail), '' unknown.
-- A receipt matches by its best form; by another form (its id read in another base) only
-- when the recipient agrees, since sequential ids make one message's id in decimal
-- another's in hex. The same holds for a parked receipt an arriving carrier id claims.
-- A receipt's forms are the stored forms its id may match (gateway/sms/carrier_ids.py), best
-- first; unmatched, it is parked under each, and listed in receipts_parked until claimed.
-- Returns one result per event: for 's', 1 once every part of the notice has its id, else 0;
-- for 'r', 'final', 'partial' (other parts still owe their receipt) or 'early' (the receipt
-- overtook the carrier id's bookkeeping: it is parked and applied when the id arrives).
-- A single-part notice keeps no per-part hashes: its part's outcome is the notice's.
-- A notice that is submitted goes on the awaiting set, due when its receipt is overdue
-- (receipt_ttl_ms): a receipt that never comes ends it ``expired`` (expire_unreceipted.lua).
-- KEYS: webhooks, events, receipts_parked, receipts_unmatched, awaiting
-- KEYS+: per event, in order: 's': carrier_id, early_receipt, notice, history, submitted_parts, receipt_parts; 'r': per form: carrier_id, early_receipt
-- ARGV: mapping_ttl_s, early_ttl_s, receipt_ttl_ms, events
--!include transition.lua
--!keys notice history receipt_parts
local map_ttl, early_ttl = tonumber(A.mapping_ttl_s), tonumber(A.early_ttl_s)
local W = 7
local E = cjson.decode(A.events)
local n = #E / W
PROGRESS = {}
FIGURES = {}
local at = ''

-- The keys each event brings: KEYS from 6 on, six for 's', two per form for 'r'.
local EK = {}
local ki = 6
for e = 0, n - 1 do
  if E[e * W + 1] == 's' then
    EK[e] = {carrier=KEYS[ki], early=KEYS[ki + 1], notice=KEYS[ki + 2], history=KEYS[ki + 3],
             sub=KEYS[ki + 4], dlr=KEYS[ki + 5]}
    ki = ki + 6
  else
    local forms = {}
    for i = 1, #E[e * W + 2].forms do
      forms[i] = {carrier=KEYS[ki], early=KEYS[ki + 1]}
      ki = ki + 2
    end
    EK[e] = {forms=forms}
  end
end

-- nk: the notice's keys {notice, history, dlr}.
local function apply_receipt(nk, id, idx, status, rat, detail)
  local cur = notice_state(nk.notice)
  local parts = tonumber(cur[8] or '1') or 1
  detail['parts'] = parts
  if parts <= 1 then
    transition(nk.notice, nk.history, id, status, rat, detail, cur)
    return 'final'
  end
  redis.call('HSET', nk.dlr, idx, status)
  local ttl = redis.call('TTL', nk.notice)
  if ttl > 0 then redis.call('EXPIRE', nk.dlr, ttl) end
  local got = redis.call('HGETALL', nk.dlr)
  if #got / 2 < parts then return 'partial' end
  local overall = 'delivered'
  for i = 2, #got, 2 do
    if got[i] ~= 'delivered' then overall = got[i] end
  end
  transition(nk.notice, nk.history, id, overall, rat, detail, cur)
  return 'final'
end

-- The notices submitted in this call, added to the awaiting set together at the end.
local submitted_now = {}
local function awaiting(id) submitted_now[#submitted_now + 1] = id end
local function flush_awaiting()
  if #submitted_now == 0 then return end
  local t = redis.call('TIME')
  local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(A.receipt_ttl_ms)
  local args = {}
  for _, id in ipairs(submitted_now) do
    args[#args + 1] = due
    args[#args + 1] = id
    if #args == 2000 then
      redis.call('ZADD', K.awaiting, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', K.awaiting, unpack(args)) end
end

local function part_submitted(k, id, idx, mid, parts, sat)
  if parts <= 1 then
    if transition(k.notice, k.history, id, 'submitted', sat, {message_ids={mid}}) == 1 then
      awaiting(id)
    end
    return 1
  end
  redis.call('HSET', k.sub, idx, mid)
  local ttl = redis.call('TTL', k.notice)
  if ttl > 0 then redis.call('EXPIRE', k.sub, ttl) end
  if redis.call('HLEN', k.sub) < parts then return 0 end
  local ids = redis.call('HVALS', k.sub)
  if transition(k.notice, k.history, id, 'submitted', sat, {message_ids=ids}) == 1 then
    awaiting(id)
  end
  return 1
end

-- One read each for every parked receipt and every carrier id mapping the batch may need.
local early_keys, map_keys = {}, {}
for e = 0, n - 1 do
  if E[e * W + 1] == 's' then
    early_keys[#early_keys + 1] = EK[e].early
  else
    for _, f in ipairs(EK[e].forms) do map_keys[#map_keys + 1] = f.carrier end
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

-- A mapping is notice_id|part|tail (older ones: notice_id|part).
local function split_map(map)
  local a = string.find(map, '|', 1, true)
  local b = string.find(map, '|', a + 1, true)
  if not b then return string.sub(map, 1, a - 1), string.sub(map, a + 1), '' end
  return string.sub(map, 1, a - 1), string.sub(map, a + 1, b - 1), string.sub(map, b + 1)
end
local function same_phone(a, b) return a ~= nil and a ~= '' and a == b end

local out = {}
for e = 0, n - 1 do
  local b = e * W + 1
  local k = EK[e]
  if E[b] == 's' then
    local id, idx, mid, parts = E[b + 1], E[b + 2], E[b + 3], tonumber(E[b + 4])
    at = E[b + 5]
    local tail = E[b + 6]
    mapped[k.carrier] = id .. '|' .. idx .. '|' .. tail
    redis.call('SET', k.carrier, mapped[k.carrier], 'EX', map_ttl)
    out[#out + 1] = part_submitted(k, id, idx, mid, parts, at)
    local parked = early[k.early]
    local r = parked and cjson.decode(parked)
    -- Parked under its best form, or under another one for the same recipient: it is ours.
    if r and (r['parks'][1] == k.early or same_phone(r['tail'], tail)) then
      -- The receipt was parked under each form its id may stand for: all go now (a form
      -- another receipt has since taken stays that one's).
      for i, key in ipairs(r['parks']) do
        if i == 1 or early[key] == parked or redis.call('GET', key) == parked then
          early[key] = nil
          redis.call('DEL', key)
        end
      end
      redis.call('ZREM', K.receipts_parked, r['member'])
      redis.call('ZREM', K.receipts_unmatched, r['member'])
      apply_receipt(k, id, idx, r['status'], r['at'], r['detail'])
    end
  else
    local rid, status = E[b + 1], E[b + 2]
    local detail = {stat=E[b + 4], err=E[b + 5], message_id=rid.id}
    at = E[b + 3]
    local rtail = E[b + 6]
    local map
    for i, f in ipairs(k.forms) do
      local m = mapped[f.carrier]
      if m and (i == 1 or same_phone(select(3, split_map(m)), rtail)) then
        map = m
        break
      end
    end
    if not map then
      -- The member names where the receipt is parked (scope, best form): a sweep can find it.
      local member = cjson.encode({id=rid.id, link=rid.link, stat=E[b + 4], err=E[b + 5], at=at,
                                   scope=rid.scope, form=rid.forms[1]})
      local parks = {}
      for i, f in ipairs(k.forms) do parks[i] = f.early end
      local value = cjson.encode({status=status, at=at, detail=detail, parks=parks, member=member,
                                  tail=rtail, forms=rid.forms})
      -- Under its best form it replaces what is there; under another form it never takes
      -- the place of a receipt parked there first (that form may be the other's best).
      for i, f in ipairs(k.forms) do
        if i == 1 then
          redis.call('SET', f.early, value, 'EX', early_ttl)
          early[f.early] = value
        elseif redis.call('SET', f.early, value, 'NX', 'EX', early_ttl) then
          early[f.early] = value
        end
      end
      local t = redis.call('TIME')
      redis.call('ZADD', K.receipts_parked, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), member)
      out[#out + 1] = 'early'
    else
      local id, idx = split_map(map)
      local nk = {notice=key_notice(id), history=key_history(id), dlr=key_receipt_parts(id)}
      out[#out + 1] = apply_receipt(nk, id, idx, status, at, detail)
    end
  end
end
flush_progress(at)
flush_figures()
flush_awaiting()
return out
