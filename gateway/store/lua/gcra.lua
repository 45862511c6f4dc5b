-- Generic cell rate algorithm: grants up to `want` tokens; returns {granted,
-- wait_ms_until_next_token}.
-- KEYS: limiter
-- ARGV: rate_per_s, burst, want
local rate, burst, want = tonumber(A.rate_per_s), tonumber(A.burst), tonumber(A.want)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = 1000 / rate
local tat = tonumber(redis.call('GET', K.limiter) or now)
if tat < now then tat = now end
local avail = math.floor((now + burst * interval - tat) / interval)
if avail <= 0 then
  return {0, math.ceil(tat - burst * interval + interval - now)}
end
local granted = math.min(avail, want)
tat = tat + granted * interval
redis.call('SET', K.limiter, tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return {granted, 0}
