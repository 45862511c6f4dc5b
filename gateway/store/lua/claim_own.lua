-- A worker's confirmation before it hands over what it read: the entries still pending on
-- this consumer are claimed again for it (a write; the caller's WAIT after it, on the same
-- connection, confirms that a replica has them). One another consumer holds now (it read
-- it after a failover rolled the group back, or reclaimed it), acked or deleted is left
-- out, so two workers never both hand one entry over.
-- KEYS: stream
-- KEYS+: the other streams read at once (the same slot)
-- ARGV: group, consumer, ids_json
-- ids_json: one JSON array of entry ids per stream, in KEYS order.
-- Returns, per stream, the ids claimed.
local lists = cjson.decode(A.ids_json)
local out = {}
for i = 1, #KEYS do
  local mine = {}
  for _, id in ipairs(lists[i]) do
    local p = redis.call('XPENDING', KEYS[i], A.group, id, id, 1)
    if p[1] and p[1][2] == A.consumer then mine[#mine + 1] = id end
  end
  if #mine > 0 then
    local claim = {'XCLAIM', KEYS[i], A.group, A.consumer, 0}
    for _, id in ipairs(mine) do claim[#claim + 1] = id end
    claim[#claim + 1] = 'JUSTID'
    out[i] = redis.call(unpack(claim))
  else
    out[i] = {}
  end
end
return out
