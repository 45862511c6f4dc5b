-- Parking notices 2 h past their deadline with no follow-up yet: each counts once among
-- the figures' missing follow-ups (no status change). Returns how many were looked at.
-- KEYS: follow_ups_due
-- ARGV: now_ms, max
--!include figures.lua
--!keys notice
local due = redis.call('ZRANGEBYSCORE', K.follow_ups_due, '-inf', A.now_ms, 'LIMIT', 0,
                       tonumber(A.max))
for _, id in ipairs(due) do
  redis.call('ZREM', K.follow_ups_due, id)
  local nkey = key_notice(id)
  local f = redis.call('HMGET', nkey, 'follow_up', 'stats_hour')
  if not f[1] and f[2] then
    redis.call('HSET', nkey, 'follow_up_missing', '1')
    figure(f[2], 'parking:follow_ups_missing')
  end
end
return #due
