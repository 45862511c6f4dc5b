-- Store a new notice and queue it, or return the notice made earlier with the same
-- idempotency key ({'existing', id}, or {'conflict', id} when the body differed). A new
-- notice gets, in the same step: its audit entry, its figures (counters_json: names to add 1
-- to), and as asked: the plate's warning slips so far over the window (three strikes; only
-- for a new notice, so a replay does not count twice), the reporter's latest-alert mark (for
-- replies), its place among follow-ups due. Returns {'created', id, warnings_so_far}.
-- KEYS: notice, history, queue, audit, events, idempotency?, warnings?, latest_alert?, follow_ups_due?
-- ARGV: id, body_hash, idempotency_ttl_s, retention_s, record_json, history_json, entry_json, now_ms, window_ms, audit_json, counters_json, latest_ttl_s, follow_up_due_ms
--!include new_notice.lua
--!include figures.lua
--!include events.lua
if K.idempotency ~= '' then
  local prev = redis.call('HMGET', K.idempotency, 'hash', 'id')
  if prev[2] then
    if prev[1] == A.body_hash then return {'existing', prev[2]} end
    return {'conflict', prev[2]}
  end
end
store_notice(K.notice, K.history, A.record_json, A.history_json, tonumber(A.retention_s),
             K.queue, A.entry_json)
if K.idempotency ~= '' then
  redis.call('HSET', K.idempotency, 'hash', A.body_hash, 'id', A.id)
  redis.call('EXPIRE', K.idempotency, tonumber(A.idempotency_ttl_s))
end
local now = tonumber(A.now_ms)
local hour = hour_of(now)
redis.call('HSET', K.notice, 'stats_hour', hour)
local n = 0
if K.warnings ~= '' then
  redis.call('ZREMRANGEBYSCORE', K.warnings, '-inf', now - tonumber(A.window_ms))
  n = redis.call('ZCARD', K.warnings)
  redis.call('HSET', K.notice, 'warnings_so_far', n)
end
if K.latest_alert ~= '' then
  redis.call('SET', K.latest_alert, A.id .. '|' .. A.now_ms, 'EX', tonumber(A.latest_ttl_s))
end
if K.follow_ups_due ~= '' then
  redis.call('ZADD', K.follow_ups_due, tonumber(A.follow_up_due_ms), A.id)
end
redis.call('XADD', K.audit, '*', unpack(flat_pairs(A.audit_json)))
local made = redis.call('HMGET', K.notice, 'kind', 'channel', 'key_id', 'to', 'status',
                        'created_at')
stream_event('status', A.id, made[1], made[2], made[5], made[6], made[3], made[4], nil)
for _, name in ipairs(cjson.decode(A.counters_json)) do figure(hour, name) end
return {'created', A.id, n}
