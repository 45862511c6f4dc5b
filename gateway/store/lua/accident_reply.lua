-- An MO SMS from a reporter whose latest accident alert is recent: the alert gets the reply
-- (a digit answer stands against a later 'other'), a history entry and its figures; the key
-- that posted it (its callback) and every command-centre recipient get a webhook. Applied
-- once per MO (at-least-once reading). Returns {'matched' | 'seen' | 'none', alert id}.
-- KEYS: latest_alert, webhooks, events, replies
-- ARGV: reply, text, from_masked, mo_id, mo_ms, window_ms, at, recipients_json
--!include webhook.lua
--!include figures.lua
--!include events.lua
--!keys notice history
local latest = redis.call('GET', K.latest_alert)
if not latest then return {'none', ''} end
local sep = string.find(latest, '|', 1, true)
local id, sent_ms = string.sub(latest, 1, sep - 1), tonumber(string.sub(latest, sep + 1))
local mo_ms = tonumber(A.mo_ms)
if mo_ms < sent_ms or mo_ms > sent_ms + tonumber(A.window_ms) then return {'none', id} end
local nkey = key_notice(id)
local n = redis.call('HMGET', nkey, 'reply', 'reply_mo', 'key_id', 'callback_url', 'status',
                     'accident_type', 'case_id', 'stats_hour', 'to')
if not n[5] then return {'none', id} end
if n[2] == A.mo_id then return {'seen', id} end
local keep = A.reply
if keep == 'other' and n[1] and n[1] ~= 'other' then keep = n[1] end
local MEASURE = {self_settled='self_settled', officer_requested='officer_requested',
                 other='other_reply'}
if keep ~= n[1] then
  local kind = n[6] or ''
  if n[1] then figure(n[8], figure_name('accident', kind, MEASURE[n[1]]), -1) end
  figure(n[8], figure_name('accident', kind, MEASURE[keep]))
end
redis.call('HSET', nkey, 'reply', keep, 'reply_text', A.text, 'reply_at', A.at,
           'reply_mo', A.mo_id)
local detail = {event='reply', reply=A.reply, text=A.text, case_id=n[7] or '',
                accident_type=n[6] or '', from=A.from_masked}
redis.call('RPUSH', key_history(id), cjson.encode({status=n[5], at=A.at, detail=detail}))
-- The console's list of replies: the newest REPLIES_KEPT.
local REPLIES_KEPT = 500
redis.call('LPUSH', K.replies, cjson.encode({id=id, at=A.at, reply=keep, text=A.text,
                                             case_id=n[7] or '', accident_type=n[6] or '',
                                             from=A.from_masked, key=n[3] or ''}))
redis.call('LTRIM', K.replies, 0, REPLIES_KEPT - 1)
stream_event('accident_reply', id, 'accident_alert', 'sms', n[5], A.at, n[3], n[9],
             {reply=keep, text=A.text, case_id=n[7], accident_type=n[6]})
local has_callback = n[4] and n[4] ~= ''
if has_callback then
  webhook(K.webhooks, n[3], n[4], id, 'accident_reply', 'sms', n[5], A.at, detail)
end
-- recipients: [[key_id, url], ...]; the poster heard of it through its callback already.
for _, r in ipairs(cjson.decode(A.recipients_json)) do
  if not (has_callback and r[1] == n[3]) then
    webhook(K.webhooks, r[1], r[2], id, 'accident_reply', 'sms', n[5], A.at, detail)
  end
end
return {'matched', id}
