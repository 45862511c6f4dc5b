-- Move a job's cursor (the first row not yet known admitted) forward: never back (a
-- dispatcher whose lease ran out may report a chunk late), and never onto a job that is no
-- longer there (an expired job is not made again without a TTL). Returns the cursor after.
-- KEYS: job
-- ARGV: cursor
if redis.call('EXISTS', K.job) == 0 then return -1 end
local now = tonumber(redis.call('HGET', K.job, 'cursor') or '0')
local to = tonumber(A.cursor)
if to <= now then return now end
redis.call('HSET', K.job, 'cursor', to)
return to
