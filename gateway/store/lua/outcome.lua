-- What a channel learned about a notice, in one step: the status change (history, job
-- counts, webhook) and, only if the status changed, a retry at a given time and/or a fallback
-- notice on another channel, linked from this one by fallback_id (at most one: a notice that
-- has one keeps it). Returns {changed 0|1, retry scheduled 0|1, fallback id or ''}.
-- A fallback notice gets its audit entry as it is made.
-- KEYS: notice, history, webhooks, events, retry, audit, fallback_notice?, fallback_history?, fallback_queue?
-- ARGV: id, status, at, detail_json, retry_at_ms, fallback_id, fallback_record_json, fallback_history_json, fallback_entry_json, fallback_audit_json, retention_s
--!include transition.lua
--!include new_notice.lua
--!include figures.lua
if transition(K.notice, K.history, A.id, A.status, A.at, cjson.decode(A.detail_json)) == 0 then
  return {0, 0, ''}
end
local retried = 0
if A.retry_at_ms ~= '' then
  redis.call('ZADD', K.retry, tonumber(A.retry_at_ms), A.id)
  retried = 1
end
local fallback = ''
if A.fallback_id ~= '' then
  fallback = redis.call('HGET', K.notice, 'fallback_id')
  if not fallback then
    fallback = A.fallback_id
    store_notice(K.fallback_notice, K.fallback_history, A.fallback_record_json,
                 A.fallback_history_json, tonumber(A.retention_s), K.fallback_queue,
                 A.fallback_entry_json)
    redis.call('HSET', K.notice, 'fallback_id', fallback)
    local fb = redis.call('HMGET', K.fallback_notice, 'kind', 'channel', 'key_id', 'to')
    stream_event('status', fallback, fb[1], fb[2], 'queued', A.at, fb[3], fb[4],
                 {fallback_of=A.id})
    redis.call('XADD', K.audit, '*', unpack(flat_pairs(A.fallback_audit_json)))
    local f = redis.call('HMGET', K.notice, 'kind', 'stats_hour')
    if f[1] == 'parking_notice' then figure(f[2], 'parking:sms_fallbacks') end
  end
end
return {1, retried, fallback}
