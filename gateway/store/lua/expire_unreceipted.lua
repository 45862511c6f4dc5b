-- Notices whose receipt is overdue (the awaiting set, written by sms_events.lua when they
-- were submitted) end ``expired`` with detail no_receipt, webhook and job count included, so
-- every notice reaches a final status and every job finishes. A notice that got its receipt
-- meanwhile is only taken off the set. Each is handled once, however many workers run this.
-- Returns how many expired.
-- KEYS: awaiting, webhooks, events
-- ARGV: now_ms, max, at
--!include transition.lua
--!keys notice history
local due = redis.call('ZRANGEBYSCORE', K.awaiting, '-inf', A.now_ms, 'LIMIT', 0, tonumber(A.max))
local expired = 0
for _, id in ipairs(due) do
  redis.call('ZREM', K.awaiting, id)
  local nkey = key_notice(id)
  if redis.call('HGET', nkey, 'status') == 'submitted' then
    expired = expired + transition(nkey, key_history(id), id, 'expired', A.at,
                                   {reason='no_receipt'})
  end
end
return expired
