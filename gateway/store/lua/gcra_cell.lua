-- Fragment: the generic cell rate algorithm on one limiter key, and Redis's clock in ms.
-- NEEDS: none
local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
-- Grants up to `want` tokens at `rate` per second (`burst` at once): granted, wait_ms until
-- the next token when none was granted.
local function gcra_take(key, rate, burst, want, now)
  local interval = 1000 / rate
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local avail = math.floor((now + burst * interval - tat) / interval)
  if avail <= 0 then
    return 0, math.ceil(tat - burst * interval + interval - now)
  end
  local granted = math.min(avail, want)
  tat = tat + granted * interval
  redis.call('SET', key, tostring(tat), 'PX', math.ceil(tat - now) + 1000)
  return granted, 0
end
