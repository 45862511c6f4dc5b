-- Fragment: a new notice's hash and first history entry, and its queue entry.
-- record_json and entry_json are flat JSON objects (gateway.core.records).
local function flat_pairs(json)
  local flat = {}
  for k, v in pairs(cjson.decode(json)) do flat[#flat + 1] = k; flat[#flat + 1] = tostring(v) end
  return flat
end
local function store_notice(nkey, hkey, record_json, history_json, ttl, queue, entry_json)
  redis.call('HSET', nkey, unpack(flat_pairs(record_json)))
  redis.call('RPUSH', hkey, history_json)
  redis.call('EXPIRE', nkey, ttl)
  redis.call('EXPIRE', hkey, ttl)
  redis.call('XADD', queue, '*', unpack(flat_pairs(entry_json)))
end
