-- Fragment: a reminder job's progress as its rows' notices move: per-status counts and
-- 'done' (rows with an outcome), kept in the lane of the script (the notice's lane), where
-- the job's part for that lane is. The job's end is not written here: the dispatcher sums
-- the lanes and ends it in the job's own lane (job_finish.lua).
--!table JOB_FINAL VOICE_FINAL
--!keys job job_counts
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
  local ckey = key_job_counts(job)
  redis.call('HINCRBY', ckey, old, -1)
  redis.call('HINCRBY', ckey, new, 1)
  if ends then redis.call('HINCRBY', key_job(job), 'done', 1) end
end
local function flush_progress(at)
  for job, p in pairs(PROGRESS) do
    local ckey = key_job_counts(job)
    for status, n in pairs(p.counts) do
      if n ~= 0 then redis.call('HINCRBY', ckey, status, n) end
    end
    if p.done > 0 then redis.call('HINCRBY', key_job(job), 'done', p.done) end
  end
  PROGRESS = {}
end
