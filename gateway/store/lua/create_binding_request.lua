-- Open a binding request unless its reference is taken ({'collision', 0}) or the phone has
-- had its daily number of requests ({'limit', n}); {'ok', n} with the phone's count today.
-- The count, with this request's, is the caller's (a key in the phone's own slot: a phone's
-- requests are for plates in any lane); a refused request is taken off it again.
-- KEYS: request, audit, plate_audit
-- ARGV: plate, count, daily_limit, request_ttl_s, audit_base_json, record_json
--!include audit.lua
local base = cjson.decode(A.audit_base_json)
local n = tonumber(A.count)
if redis.call('EXISTS', K.request) == 1 then return {'collision', 0} end
if n > tonumber(A.daily_limit) then
  base['ref'] = nil
  audit(K.plate_audit, A.plate, base, 'request_refused', {reason='daily_limit'})
  return {'limit', n - 1}
end
for k, v in pairs(cjson.decode(A.record_json)) do redis.call('HSET', K.request, k, tostring(v)) end
redis.call('EXPIRE', K.request, A.request_ttl_s)
audit(K.plate_audit, A.plate, base, 'requested', {})
return {'ok', n}
