-- Open a binding request unless its reference is taken ({'collision', 0}) or the phone has
-- had its daily number of requests ({'limit', n}); {'ok', n} with the phone's count today.
-- KEYS: request, per_day, audit, plate_audit
-- ARGV: plate, daily_limit, request_ttl_s, counter_ttl_s, audit_base_json, record_json
--!include audit.lua
local base = cjson.decode(A.audit_base_json)
if redis.call('EXISTS', K.request) == 1 then return {'collision', 0} end
local n = redis.call('INCR', K.per_day)
if n == 1 then redis.call('EXPIRE', K.per_day, A.counter_ttl_s) end
if n > tonumber(A.daily_limit) then
  redis.call('DECR', K.per_day)
  base['ref'] = nil
  audit(K.plate_audit, A.plate, base, 'request_refused', {reason='daily_limit'})
  return {'limit', n - 1}
end
for k, v in pairs(cjson.decode(A.record_json)) do redis.call('HSET', K.request, k, tostring(v)) end
redis.call('EXPIRE', K.request, A.request_ttl_s)
audit(K.plate_audit, A.plate, base, 'requested', {})
return {'ok', n}
