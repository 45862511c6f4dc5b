-- Stop a job: rows not yet queued are never sent, queued ones are dropped by the senders,
-- which read the cancelled set (an entry there lasts a day, longer than any backlog). The
-- job's callback hears of it in the same step, with the counts the caller summed over the
-- lanes just before. Returns the status the job had, or 'unknown'.
-- KEYS: job, jobs_active, jobs_cancelled, webhooks
-- ARGV: job_id, at, now_s, keep_s, counts_json
--!include job_end.lua
local j = job_fields()
if not j[2] then return 'unknown' end
if j[2] ~= 'running' and j[2] ~= 'waiting_window' and j[2] ~= 'receiving' then return j[2] end
local now = tonumber(A.now_s)
redis.call('HSET', K.job, 'status', 'cancelled', 'cancelled_at', A.at)
redis.call('ZREM', K.jobs_active, A.job_id)
redis.call('ZADD', K.jobs_cancelled, now, A.job_id)
redis.call('ZREMRANGEBYSCORE', K.jobs_cancelled, 0, now - tonumber(A.keep_s))
job_webhook(A.job_id, j, 'cancelled', A.at, A.counts_json)
return j[2]
