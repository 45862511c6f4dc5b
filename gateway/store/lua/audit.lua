-- Fragment: a binding audit entry, in the global trail and (with a plate) in the plate's.
-- NEEDS: audit
local function audit(plate_audit, plate, base, event, extra)
  local e = {}
  for k, v in pairs(base) do e[k] = v end
  e['event'] = event
  if plate ~= '' then e['plate'] = plate end
  for k, v in pairs(extra or {}) do e[k] = v end
  local s = cjson.encode(e)
  redis.call('LPUSH', K.audit, s)
  redis.call('LTRIM', K.audit, 0, 999999)
  if plate ~= '' then
    redis.call('LPUSH', plate_audit, s)
    redis.call('LTRIM', plate_audit, 0, 9999)
  end
end
