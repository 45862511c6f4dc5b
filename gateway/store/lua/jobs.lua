-- Fragment: reminder jobs: per-status counts, and the job's end once every recipient has an
-- outcome (its callback then goes on the outbox).
-- NEEDS: webhooks, jobs_active
--!include webhook.lua
--!table JOB_FINAL VOICE_FINAL
--!keys job job_counts
-- j: HMGET of the job's total, status, callback_url, key_id, channel.
local function job_webhook(job, ckey, j, status, at)
  if not j[3] or j[3] == '' then return end
  local flat = redis.call('HGETALL', ckey)
  local counts = {}
  for i = 1, #flat, 2 do
    local n = tonumber(flat[i + 1])
    if n ~= 0 then counts[flat[i]] = n end
  end
  webhook(K.webhooks, j[4], j[3], job, 'reminder_job', j[5], status, at,
          {total=tonumber(j[1] or '0'), counts=counts})
end
local function job_fields(jkey)
  return redis.call('HMGET', jkey, 'total', 'status', 'callback_url', 'key_id', 'channel')
end
local function job_maybe_finish(job, jkey, ckey, done, at)
  local j = job_fields(jkey)
  if j[2] ~= 'running' and j[2] ~= 'waiting_window' then return end
  if done < tonumber(j[1] or '0') then return end
  redis.call('HSET', jkey, 'status', 'finished', 'finished_at', at)
  redis.call('ZREM', K.jobs_active, job)
  job_webhook(job, ckey, j, 'finished', at)
end
-- Scripts that apply many events at once set PROGRESS to a table: the counts then add up
-- there and flush_progress writes them once, instead of three writes per event.
local PROGRESS = nil
local function job_progress(job, old, new, at, channel)
  local final = JOB_FINAL
  if channel == 'voice' then final = VOICE_FINAL end
  local ends = final[new] and not final[old]
  if PROGRESS then
    local p = PROGRESS[job]
    if not p then
      p = {counts={}, done=0}
      PROGRESS[job] = p
    end
    p.counts[old] = (p.counts[old] or 0) - 1
    p.counts[new] = (p.counts[new] or 0) + 1
    if ends then p.done = p.done + 1 end
    return
  end
  local jkey, ckey = key_job(job), key_job_counts(job)
  redis.call('HINCRBY', ckey, old, -1)
  redis.call('HINCRBY', ckey, new, 1)
  if ends then
    job_maybe_finish(job, jkey, ckey, redis.call('HINCRBY', jkey, 'done', 1), at)
  end
end
local function flush_progress(at)
  for job, p in pairs(PROGRESS) do
    local jkey, ckey = key_job(job), key_job_counts(job)
    for status, n in pairs(p.counts) do
      if n ~= 0 then redis.call('HINCRBY', ckey, status, n) end
    end
    if p.done > 0 then
      job_maybe_finish(job, jkey, ckey, redis.call('HINCRBY', jkey, 'done', p.done), at)
    end
  end
  PROGRESS = {}
end
