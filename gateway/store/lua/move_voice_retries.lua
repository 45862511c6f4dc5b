-- Put the voice notices whose retry time has come back on their queue: a reminder on the
-- bulk queue, any other on the priority one. Each is moved once, however many workers run
-- this. Returns how many moved.
-- KEYS: retry, queue, bulk_queue
-- ARGV: now_ms, max
--!keys notice
local due = redis.call('ZRANGEBYSCORE', K.retry, '-inf', A.now_ms, 'LIMIT', 0, tonumber(A.max))
for _, id in ipairs(due) do
  redis.call('ZREM', K.retry, id)
  local queue = K.queue
  if redis.call('HGET', key_notice(id), 'kind') == 'reminder' then queue = K.bulk_queue end
  redis.call('XADD', queue, '*', 'id', id)
end
return #due
