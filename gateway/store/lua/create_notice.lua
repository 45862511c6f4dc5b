-- Store a new notice and queue it, or return the notice made earlier with the same
-- idempotency key ({'existing', id}, or {'conflict', id} when the body differed).
-- Optionally counts the plate's reminders over a window (three-strike policy), only for a new
-- notice, so an idempotent replay does not count twice: {'created', id, n}.
-- KEYS: notice, history, queue, idempotency?, reminders?
-- ARGV: id, body_hash, idempotency_ttl_s, retention_s, record_json, history_json, entry_json, now_ms, window_ms
--!include new_notice.lua
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
if K.reminders ~= '' then
  local now, window = tonumber(A.now_ms), tonumber(A.window_ms)
  redis.call('ZREMRANGEBYSCORE', K.reminders, '-inf', now - window)
  redis.call('ZADD', K.reminders, now, A.id)
  redis.call('PEXPIRE', K.reminders, window)
  local n = redis.call('ZCARD', K.reminders)
  redis.call('HSET', K.notice, 'reminder_number', n, 'penalty_due', n >= 3 and '1' or '0')
  return {'created', A.id, n}
end
return {'created', A.id}
