-- Put the webhooks whose retry time has come back on the outbox stream. Returns how many.
-- KEYS: retry, webhooks
-- ARGV: now_ms, max
local due = redis.call('ZRANGEBYSCORE', K.retry, '-inf', A.now_ms, 'LIMIT', 0, tonumber(A.max))
for _, item in ipairs(due) do
  local f = cjson.decode(item)
  redis.call('XADD', K.webhooks, '*', 'id', f.id, 'key_id', f.key_id, 'url', f.url,
             'body', f.body, 'attempt', tostring(f.attempt), 'first_at', f.first_at)
  redis.call('ZREM', K.retry, item)
end
return #due
