-- Take a slot under the concurrent-call limit shared by every worker: 1, or 0 when full. A
-- slot left by a process that died expires by itself.
-- KEYS: active_calls
-- ARGV: member, ttl_ms, max
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', K.active_calls, '-inf', now)
if redis.call('ZCARD', K.active_calls) >= tonumber(A.max) then return 0 end
redis.call('ZADD', K.active_calls, now + tonumber(A.ttl_ms), A.member)
return 1
