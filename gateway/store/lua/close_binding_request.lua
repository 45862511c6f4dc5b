-- Close a pending binding request (cancelled ...): 'ok', or the status it already had, or
-- 'unknown'.
-- KEYS: request, audit
-- ARGV: status, at, audit_base_json, reason
--!include audit.lua
--!keys binding_audit_of
local base = cjson.decode(A.audit_base_json)
local r = redis.call('HMGET', K.request, 'status', 'plate')
if not r[1] then return 'unknown' end
if r[1] ~= 'pending' then return r[1] end
redis.call('HSET', K.request, 'status', A.status, 'closed_at', A.at)
audit(key_binding_audit_of(r[2]), r[2], base, A.status, {reason=A.reason})
return 'ok'
