-- Fragment: a notice's status change, with its history entry, job counts and webhook.
-- NEEDS: webhooks, events
--!include webhook.lua
--!include jobs.lua
--!include events.lua
--!include figures.lua
-- Ranks keep a notice from moving backwards when events arrive out of order. A status in
-- HARD is final; the others of rank 3 end one attempt: only a later attempt moves on.
--!table RANK HARD
-- A notice's fields that a transition reads (the part count for receipts; 9-11 for its
-- figures; the recipient for the events stream; the statuses its webhooks are for).
local function notice_state(nkey)
  return redis.call('HMGET', nkey, 'status', 'callback_url', 'key_id', 'kind', 'channel',
                    'attempt', 'job', 'parts', 'stats_hour', 'template', 'accident_type', 'to',
                    'status_events')
end
-- Whether the caller asked for this status's webhook (gateway.core.status_events): an empty
-- selection is every status.
local function status_selected(sel, status)
  if not sel or sel == '' then return true end
  return string.find(',' .. sel .. ',', ',' .. status .. ',', 1, true) ~= nil
end
local DELIVERED_LIKE = {delivered=1, sent=1, listened=1}
-- The figures a status change adds to: calls answered (once per notice), the owner's answer,
-- an alert delivered, a reminder's end.
local function transition_figures(nkey, cur, old, new)
  local hour, kind = cur[9], cur[4]
  if not hour then return end
  if kind == 'parking_notice' then
    if new == 'answered' then
      if redis.call('HSETNX', nkey, 'answered_counted', '1') == 1 then
        figure(hour, 'parking:calls_answered')
      end
    elseif new == 'acknowledged' or new == 'disputed' then
      figure(hour, figure_name('parking', new))
    end
  elseif kind == 'accident_alert' then
    if new == 'delivered' then figure(hour, figure_name('accident', cur[11] or '', 'delivered')) end
  elseif kind == 'reminder' and new ~= 'cancelled' then
    local final = JOB_FINAL
    if cur[5] == 'voice' then final = VOICE_FINAL end
    if final[new] and not final[old] then
      local measure = 'failed'
      if DELIVERED_LIKE[new] then measure = 'delivered' end
      figure(hour, figure_name('reminder', cur[10] or '', cur[5], measure))
    end
  end
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
  transition_figures(nkey, cur, cur[1], status)
  -- A reminder job's rows stay off the events stream: a large job would push the alerts and
  -- parking notices the stream is for out of its cap; the job's record counts them.
  if cur[4] ~= 'reminder' then
    stream_event('status', id, cur[4], cur[5], status, at, cur[3], cur[12], {job=cur[7]})
  end
  if cur[2] and cur[2] ~= '' and status_selected(cur[13], status) then
    webhook(K.webhooks, cur[3], cur[2], id, cur[4], cur[5], status, at, detail)
  end
  return 1
end
