-- Take a slot under the concurrent-call limit every voice worker shares, for one call start:
-- one key for the whole gateway, whichever lanes its notices are in. A slot's score is when it
-- expires by itself (a worker that died holds it no longer than that); its member is the
-- worker's own name for the start, given back when the call ends or does not start.
-- Returns 1 (taken) or 0 (every slot busy).
-- KEYS: active_calls
-- ARGV: slot, ttl_ms, max_calls
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', K.active_calls, '-inf', now)
if redis.call('ZSCORE', K.active_calls, A.slot) then return 1 end
if redis.call('ZCARD', K.active_calls) >= tonumber(A.max_calls) then return 0 end
redis.call('ZADD', K.active_calls, now + tonumber(A.ttl_ms), A.slot)
return 1
