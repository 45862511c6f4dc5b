-- Fragment: one webhook on the signed outbox. The envelope has the fields of
-- gateway.core.webhooks.webhook_envelope (a nil field is left out, as there).
local function webhook(stream, key_id, url, id, kind, channel, status, at, detail)
  local body = cjson.encode({id=id, kind=kind, channel=channel, status=status, at=at,
                             detail=detail})
  redis.call('XADD', stream, '*', 'id', id, 'key_id', key_id, 'url', url, 'body', body,
             'attempt', '1', 'first_at', at)
end
