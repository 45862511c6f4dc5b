-- Count a parking notice against its plate's limit in a sliding window: one citizen is not
-- rung (or texted) more than `max` times in `window_ms`, however many officers report the
-- car. Returns {1, 0} when counted, {0, ms until the oldest counted notice leaves the window}
-- when the plate is at its limit.
-- KEYS: plate_calls
-- ARGV: member, window_ms, max
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(A.window_ms)
redis.call('ZREMRANGEBYSCORE', K.plate_calls, '-inf', now - window)
if redis.call('ZCARD', K.plate_calls) >= tonumber(A.max) then
  local oldest = redis.call('ZRANGE', K.plate_calls, 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', K.plate_calls, now, A.member)
redis.call('PEXPIRE', K.plate_calls, window)
return {1, 0}
