-- Generic cell rate algorithm: grants up to `want` tokens; returns {granted,
-- wait_ms_until_next_token}.
-- KEYS: limiter
-- ARGV: rate_per_s, burst, want
--!include gcra_cell.lua
local granted, wait = gcra_take(K.limiter, tonumber(A.rate_per_s), tonumber(A.burst),
                                tonumber(A.want), redis_now_ms())
return {granted, wait}
