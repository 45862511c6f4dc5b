-- Fragment: a reminder job's end (finished or cancelled) and its callback on the outbox.
-- NEEDS: job, webhooks
--!include webhook.lua
-- The job's total, status, callback_url, key_id, channel.
local function job_fields()
  return redis.call('HMGET', K.job, 'total', 'status', 'callback_url', 'key_id', 'channel')
end
-- counts_json: the rows per status summed over the lanes (what the caller read).
local function job_webhook(job, j, status, at, counts_json)
  if not j[3] or j[3] == '' then return end
  local counts = {}
  for s, n in pairs(cjson.decode(counts_json)) do
    if tonumber(n) ~= 0 then counts[s] = tonumber(n) end
  end
  webhook(K.webhooks, j[4], j[3], job, 'reminder_job', j[5], status, at,
          {total=tonumber(j[1] or '0'), counts=counts})
end
