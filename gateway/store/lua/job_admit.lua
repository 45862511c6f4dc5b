-- Rows of a job that are in one lane (their recipients'), in row order, in one call,
-- run in that lane. Idempotent by row: the lane's part of the job keeps 'lane_cursor', the
-- row after the last one admitted here, and a dispatcher that restarts re-reads rows below
-- it, which are skipped here ('seen'). The rows' fields are one JSON array, six per row:
-- row number, notice_id, to (national number or email), queue destination, text, parts.
-- Returns one status per row: seen, queued, opted_out, capped or duplicate; or 'gap' for
-- every row when an earlier slice of this lane sent in the same pipeline did not land (the
-- lane's cursor is below 'prev', the row after that slice; -1 for a lane's first slice of
-- a chunk): nothing is admitted past a hole, and the dispatcher reads again from the first
-- row of the first slice that did not land. The notices made share one audit entry,
-- 'notices_created', whose 'notices' field lists [notice_id, masked recipient, digest] as
-- gateway.core.audit builds them (the audit reader shows one 'notice_created' per notice),
-- and the rows' outcomes go into the lane's counts of the job and into the figures. The
-- rows that end here (all but 'queued') are 'done' at once.
-- KEYS: part, part_counts, queue, opt_outs, audit
-- KEYS+: per row, in order: notice, history, sent_today, recent_reminder
-- ARGV: job_id, prev, at, retention_s, job_retention_s, daily_cap, dedup_ttl_s, check_opt_out, key_id, key_name, template, template_version, subject, channel, rows
--!include figures.lua
local job, prev = A.job_id, tonumber(A.prev)
local at, retention = A.at, A.retention_s
local cap, dedup = tonumber(A.daily_cap), tonumber(A.dedup_ttl_s)
local template, channel = A.template, A.channel
local W, KW, K0 = 6, 4, 5
local E = cjson.decode(A.rows)
local n = #E / W
local out = {}
local was = redis.call('HGET', K.part, 'lane_cursor')
local cursor = tonumber(was or '0')
if prev >= 0 and cursor < prev then
  for i = 1, n do out[i] = 'gap' end
  return out
end
-- Rows from 'from' on (from 0) are new here.
local from = n
for i = 0, n - 1 do
  if tonumber(E[i * W + 1]) >= cursor then
    from = i
    break
  end
end
for i = 0, from - 1 do out[#out + 1] = 'seen' end
if from >= n then return out end
-- The keys of row i (from 0).
local function row_key(i, k) return KEYS[K0 + i * KW + k] end

local tos = {}
for i = from, n - 1 do tos[#tos + 1] = E[i * W + 3] end
local opted = {}
if A.check_opt_out == '1' then opted = redis.call('SMISMEMBER', K.opt_outs, unpack(tos)) end
local sent_today = {}
if cap > 0 then
  local ks = {}
  for i = from, n - 1 do ks[#ks + 1] = row_key(i, 3) end
  local got = redis.call('MGET', unpack(ks))
  for k, to in ipairs(tos) do sent_today[to] = tonumber(got[k] or '0') or 0 end
end
-- Every read above comes before the first write, and Redis refuses a script for want of
-- memory at its first write: a slice refused so writes nothing and is read again. (An error
-- in a later write, which only a key of the wrong type would raise, would leave the rest
-- of the slice behind this lane's cursor.)
redis.call('HSET', K.part, 'lane_cursor', tonumber(E[(n - 1) * W + 1]) + 1)

local function masked(to)
  local at_sign = string.find(to, '@', 1, true)
  if at_sign then return string.sub(to, 1, 1) .. '***' .. string.sub(to, at_sign) end
  if #to < 8 then return string.rep('*', #to) end
  return string.sub(to, 1, 3) .. string.rep('*', #to - 7) .. string.sub(to, -4)
end
local hour = tostring(math.floor(tonumber(redis.call('TIME')[1]) / 3600))

local counts, skipped, made = {}, 0, {}
for i = from, n - 1 do
  local b = i * W
  local id, to = E[b + 2], E[b + 3]
  local status = 'queued'
  if opted[i - from + 1] == 1 then
    status = 'opted_out'
  elseif cap > 0 and sent_today[to] >= cap then
    status = 'capped'
  elseif dedup > 0 and not redis.call('SET', row_key(i, 4), job, 'NX', 'EX', dedup) then
    status = 'duplicate'
  end
  if status == 'queued' then
    if cap > 0 then
      sent_today[to] = sent_today[to] + 1
      if redis.call('INCR', row_key(i, 3)) == 1 then redis.call('EXPIRE', row_key(i, 3), 172800) end
    end
    local nkey, hkey = row_key(i, 1), row_key(i, 2)
    redis.call('HSET', nkey, 'id', id, 'kind', 'reminder', 'channel', channel,
               'status', 'queued', 'to', to, 'parts', E[b + 6], 'key_id', A.key_id,
               'job', job, 'template', template, 'template_version', A.template_version,
               'created_at', at, 'stats_hour', hour)
    if channel == 'voice' then redis.call('HSET', nkey, 'text', E[b + 5]) end
    redis.call('RPUSH', hkey, cjson.encode({status='queued', at=at, detail={job=job}}))
    redis.call('EXPIRE', nkey, retention)
    redis.call('EXPIRE', hkey, retention)
    redis.call('XADD', K.queue, '*', 'id', id, 'to', E[b + 4], 'text', E[b + 5],
               'job', job, 'subject', A.subject)
    made[#made + 1] = {id, masked(to), string.sub(redis.sha1hex('to:' .. to), 1, 16)}
  else
    skipped = skipped + 1
  end
  counts[status] = (counts[status] or 0) + 1
  out[#out + 1] = status
end
if #made > 0 then
  redis.call('XADD', K.audit, '*', 'event', 'notices_created', 'at', at, 'key_id', A.key_id,
             'key_name', A.key_name, 'kind', 'reminder', 'channel', channel,
             'template', template, 'job', job, 'notices', cjson.encode(made))
end
local FIGURE = {queued='sent', opted_out='opted_out', capped='capped', duplicate='duplicate'}
for status, c in pairs(counts) do
  redis.call('HINCRBY', K.part_counts, status, c)
  figure(hour, figure_name('reminder', template, channel, FIGURE[status]), c)
end
if skipped > 0 then redis.call('HINCRBY', K.part, 'done', skipped) end
if not was then  -- this lane's part is new: it lasts as long as the job
  redis.call('EXPIRE', K.part, A.job_retention_s)
  redis.call('EXPIRE', K.part_counts, A.job_retention_s)
end
return out
