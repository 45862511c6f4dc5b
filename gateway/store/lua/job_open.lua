-- Intake done: the job starts ('running'), or ends at once when no row was good
-- ('finished'). A job cancelled while its rows were arriving stays cancelled. Its rows, bad
-- rows are kept as long as the job (its counts are given that time as rows are admitted).
-- Returns the job's status after the call.
-- KEYS: job, job_rows, job_bad_rows, jobs_active
-- ARGV: job_id, total, bad_rows, at, now_s, retention_s
local current = redis.call('HGET', K.job, 'status')
local status = current
redis.call('HSET', K.job, 'total', A.total, 'bad_rows', A.bad_rows)
if current == 'receiving' then
  if tonumber(A.total) > 0 then
    status = 'running'
    redis.call('HSET', K.job, 'status', status, 'cursor', 0)
    redis.call('ZADD', K.jobs_active, A.now_s, A.job_id)
  else
    status = 'finished'
    redis.call('HSET', K.job, 'status', status, 'cursor', 0, 'finished_at', A.at)
  end
end
for _, k in ipairs({K.job_rows, K.job_bad_rows}) do
  redis.call('EXPIRE', k, A.retention_s)
end
return status or 'unknown'
