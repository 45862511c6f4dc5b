-- Fragment: a notice's status change, with its history entry, job counts and webhook.
-- NEEDS: webhooks, jobs_active
--!include jobs.lua
-- Ranks keep a notice from moving backwards when events arrive out of order. A status in
-- HARD is final; the others of rank 3 end one attempt: only a later attempt moves on.
--!table RANK HARD
-- A notice's fields that a transition reads (and the part count, for receipts).
local function notice_state(nkey)
  return redis.call('HMGET', nkey, 'status', 'callback_url', 'key_id', 'kind', 'channel',
                    'attempt', 'job', 'parts')
end
-- cur: the notice_state already read by the caller, or nil. Returns 1 if the status changed.
local function transition(nkey, hkey, id, status, at, detail, cur)
  cur = cur or notice_state(nkey)
  if not cur[1] then return 0 end
  local attempt = tonumber(detail['attempt'] or 0) or 0
  local cur_attempt = tonumber(cur[6] or 0) or 0
  local new_attempt = attempt > cur_attempt
  if HARD[cur[1]] then return 0 end
  if not new_attempt then
    local old, new = RANK[cur[1]] or 0, RANK[status] or 0
    if new < old or cur[1] == status or (old == 3 and cur[1] ~= 'failed') then return 0 end
    if cur[1] == 'failed' then return 0 end
  end
  redis.call('HSET', nkey, 'status', status, 'updated_at', at)
  if new_attempt then redis.call('HSET', nkey, 'attempt', attempt) end
  redis.call('RPUSH', hkey, cjson.encode({status=status, at=at, detail=detail}))
  if cur[7] then job_progress(cur[7], cur[1], status, at, cur[5]) end
  if cur[2] and cur[2] ~= '' then
    webhook(K.webhooks, cur[3], cur[2], id, cur[4], cur[5], status, at, detail)
  end
  return 1
end
