-- What the officer found when the time was up, exactly once per parking notice. 'moved'
-- ends the notice moved (after the call's own outcome); 'still_parked' records a warning
-- slip against the plate and counts the plate's slips over the window (the third is due a
-- penalty). Figures, history, the audit entry and the callback's webhook in the same step.
-- Returns {result, outcome, warning_number, penalty_due 0|1, status}; result: 'recorded',
-- 'replayed' (the same request again), 'done' (another follow-up came first: its values),
-- 'unknown', 'forbidden' (another key's notice) or 'too_late'.
-- KEYS: notice, history, warnings, follow_ups_due, webhooks, events, audit
-- ARGV: id, key_id, admin, outcome, at, now_ms, window_ms, late_ms, replay_mark, detail_json, audit_json
--!include webhook.lua
--!include new_notice.lua
--!include figures.lua
--!include events.lua
local n = redis.call('HMGET', K.notice, 'kind', 'key_id', 'deadline_ms', 'follow_up',
                     'follow_up_mark', 'warning_number', 'penalty_due', 'status',
                     'callback_url', 'channel', 'stats_hour', 'follow_up_missing', 'to')
if n[1] ~= 'parking_notice' then return {'unknown', '', '0', '0', ''} end
if A.admin ~= '1' and n[2] ~= A.key_id then return {'forbidden', '', '0', '0', ''} end
if n[4] then
  local result = 'done'
  if A.replay_mark ~= '' and n[5] == A.replay_mark then result = 'replayed' end
  return {result, n[4], n[6] or '0', n[7] or '0', n[8]}
end
local now = tonumber(A.now_ms)
if now > tonumber(n[3] or '0') + tonumber(A.late_ms) then
  return {'too_late', '', '0', '0', n[8]}
end
local detail = cjson.decode(A.detail_json)
local hour = n[11]
local status, number, penalty = n[8], 0, '0'
if A.outcome == 'moved' then
  status = 'moved'
  redis.call('HSET', K.notice, 'status', status, 'updated_at', A.at)
  figure(hour, 'parking:moved')
else
  local window = tonumber(A.window_ms)
  redis.call('ZREMRANGEBYSCORE', K.warnings, '-inf', now - window)
  redis.call('ZADD', K.warnings, now, A.id)
  redis.call('PEXPIRE', K.warnings, window)
  number = redis.call('ZCARD', K.warnings)
  if number >= 3 then penalty = '1' end
  detail['warning_number'] = number
  detail['penalty_due'] = penalty == '1'
  figure(hour, 'parking:warnings')
  if penalty == '1' then figure(hour, 'parking:penalties_due') end
end
-- Counted missing 2 h after the deadline, found later: no longer missing.
if n[12] then figure(hour, 'parking:follow_ups_missing', -1) end
redis.call('HSET', K.notice, 'follow_up', A.outcome, 'follow_up_at', A.at,
           'follow_up_mark', A.replay_mark, 'warning_number', number, 'penalty_due', penalty)
redis.call('HDEL', K.notice, 'follow_up_missing')
redis.call('RPUSH', K.history, cjson.encode({status=status, at=A.at, detail=detail}))
redis.call('ZREM', K.follow_ups_due, A.id)
stream_event('follow_up', A.id, 'parking_notice', n[10], status, A.at, n[2], n[13],
             {outcome=A.outcome, warning_number=number})
if n[9] and n[9] ~= '' then
  webhook(K.webhooks, n[2], n[9], A.id, 'parking_follow_up', n[10], status, A.at, detail)
end
local entry = cjson.decode(A.audit_json)
entry['warning_number'] = number
redis.call('XADD', K.audit, '*', unpack(flat_pairs(cjson.encode(entry))))
return {'recorded', A.outcome, tostring(number), penalty, status}
