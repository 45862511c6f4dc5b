-- A link's send rate under AIMD, and GCRA tokens at that rate. When the SMSC throttles
-- (`throttled` = 1) the rate is multiplied by `factor`, at most once per `hold_ms` (the
-- throttles of one burst are one signal); it creeps back by `increase_per_s` each second,
-- between `floor` and `max_rate`. Every process sending on the link shares the state.
-- Returns {granted, wait_ms, rate in tokens per 1000 s, 1 if this call cut the rate}.
-- KEYS: limiter, state
-- ARGV: max_rate, floor, increase_per_s, factor, hold_ms, burst, want, throttled
--!include gcra_cell.lua
local now = redis_now_ms()
local top, floor = tonumber(A.max_rate), tonumber(A.floor)
local s = redis.call('HMGET', K.state, 'rate', 'at', 'cut_at')
local rate = tonumber(s[1]) or top
local cut_at = tonumber(s[3]) or 0
rate = math.min(top, rate + tonumber(A.increase_per_s) * math.max(0, now - (tonumber(s[2]) or now)) / 1000)
local cut = 0
if A.throttled == '1' and now - cut_at >= tonumber(A.hold_ms) then
  rate = math.max(floor, rate * tonumber(A.factor))
  cut_at, cut = now, 1
end
if rate < top then
  redis.call('HSET', K.state, 'rate', tostring(rate), 'at', tostring(now), 'cut_at', tostring(cut_at))
  redis.call('PEXPIRE', K.state, 3600000)
elseif s[1] then
  redis.call('DEL', K.state)
end
local granted, wait = 0, 0
if tonumber(A.want) > 0 then
  granted, wait = gcra_take(K.limiter, rate, tonumber(A.burst), tonumber(A.want), now)
end
return {granted, wait, math.floor(rate * 1000), cut}
