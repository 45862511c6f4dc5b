-- A reminder job ends once every row has an outcome: the caller (the dispatcher) summed
-- 'done' and the counts over the lanes the rows were admitted in; here, in the job's lane,
-- the job ends once, with its callback, unless it was cancelled or ended meanwhile. Returns
-- the job's status after the call.
-- KEYS: job, jobs_active, webhooks
-- ARGV: job_id, done, counts_json, at
--!include job_end.lua
local j = job_fields()
if not j[2] then return 'unknown' end
if j[2] ~= 'running' and j[2] ~= 'waiting_window' then return j[2] end
if tonumber(A.done) < tonumber(j[1] or '0') then return j[2] end
redis.call('HSET', K.job, 'status', 'finished', 'finished_at', A.at)
redis.call('ZREM', K.jobs_active, A.job_id)
job_webhook(A.job_id, j, 'finished', A.at, A.counts_json)
return 'finished'
