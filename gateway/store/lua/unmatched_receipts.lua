-- Parked receipts still unclaimed `grace_ms` after they came are moved to the unmatched list
-- (kept `forget_ms`, at most `keep` of them) and returned, so that exactly one worker logs
-- and counts each. A carrier id that still comes later claims it from there.
-- KEYS: receipts_parked, receipts_unmatched
-- ARGV: grace_ms, forget_ms, keep
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', K.receipts_parked, '-inf', now - tonumber(A.grace_ms),
                       'WITHSCORES', 'LIMIT', 0, 500)
local out = {}
for i = 1, #due, 2 do
  redis.call('ZREM', K.receipts_parked, due[i])
  redis.call('ZADD', K.receipts_unmatched, due[i + 1], due[i])
  out[#out + 1] = due[i]
end
redis.call('ZREMRANGEBYSCORE', K.receipts_unmatched, '-inf', now - tonumber(A.forget_ms))
redis.call('ZREMRANGEBYRANK', K.receipts_unmatched, 0, -tonumber(A.keep) - 1)
return out
