-- Remove a plate's binding only if the phone that asks (its caller id) is the bound one:
-- 'removed', 'refused' or 'no_binding'.
-- KEYS: binding, audit, plate_audit
-- ARGV: plate, phone, audit_base_json
--!include audit.lua
local base = cjson.decode(A.audit_base_json)
local phone = redis.call('HGET', K.binding, 'phone')
if not phone then
  audit(K.plate_audit, A.plate, base, 'removal_refused', {reason='no_binding'})
  return 'no_binding'
end
if phone ~= A.phone then
  audit(K.plate_audit, A.plate, base, 'removal_refused', {reason='caller_is_not_the_bound_phone'})
  return 'refused'
end
redis.call('DEL', K.binding)
audit(K.plate_audit, A.plate, base, 'removed', {phone=phone})
return 'removed'
