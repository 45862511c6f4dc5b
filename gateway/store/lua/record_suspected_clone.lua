-- A citizen said "not my vehicle" to a parking call: the plate's suspected-clone report
-- counts it (exactly, however many workers report at once) and every command-centre
-- recipient gets the report as a webhook. Returns the plate's count, or 0 when the notice
-- has no plate.
-- KEYS: notice, clones, webhooks
-- ARGV: notice_id, at, recipients_json
--!include webhook.lua
--!include figures.lua
local n = redis.call('HMGET', K.notice, 'plate', 'location', 'stats_hour')
local plate = n[1]
if not plate or plate == '' then return 0 end
local prev = redis.call('HGET', K.clones, plate)
local count = 1
if prev then count = cjson.decode(prev)['count'] + 1 end
local report = {plate=plate, count=count, last_notice=A.notice_id, last_at=A.at,
                location=n[2] or ''}
redis.call('HSET', K.clones, plate, cjson.encode(report))
figure(n[3], 'parking:suspected_cloned_plates')
-- recipients: [[key_id, url], ...]
for _, r in ipairs(cjson.decode(A.recipients_json)) do
  webhook(K.webhooks, r[1], r[2], A.notice_id, 'suspected_cloned_plate', nil, nil, A.at, report)
end
return count
