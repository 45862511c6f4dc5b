-- A citizen said "not my vehicle" to a parking call: the plate's suspected-clone report
-- counts it (exactly, however many workers report at once) and every command-centre
-- recipient gets the report as a webhook. Returns the plate's count, or 0 when the notice
-- has no plate.
-- KEYS: notice, clones, webhooks, events
-- ARGV: notice_id, at, recipients_json
--!include webhook.lua
--!include figures.lua
--!include events.lua
local n = redis.call('HMGET', K.notice, 'plate', 'location', 'stats_hour', 'key_id', 'channel',
                     'to')
local plate = n[1]
if not plate or plate == '' then return 0 end
local prev = redis.call('HGET', K.clones, plate)
local count = 1
-- The notices behind the report, newest first (the last NOTICES_KEPT).
local NOTICES_KEPT = 20
local notices = {{id=A.notice_id, at=A.at, location=n[2] or ''}}
if prev then
  local old = cjson.decode(prev)
  count = old['count'] + 1
  for _, x in ipairs(old['notices'] or {}) do
    if #notices < NOTICES_KEPT then notices[#notices + 1] = x end
  end
end
local report = {plate=plate, count=count, last_notice=A.notice_id, last_at=A.at,
                location=n[2] or '', notices=notices}
redis.call('HSET', K.clones, plate, cjson.encode(report))
figure(n[3], 'parking:suspected_cloned_plates')
stream_event('suspected_cloned_plate', A.notice_id, 'parking_notice', n[5], 'disputed', A.at,
             n[4], n[6], {plate=plate, count=count, location=n[2]})
-- recipients: [[key_id, url], ...]
for _, r in ipairs(cjson.decode(A.recipients_json)) do
  webhook(K.webhooks, r[1], r[2], A.notice_id, 'suspected_cloned_plate', nil, nil, A.at, report)
end
return count
