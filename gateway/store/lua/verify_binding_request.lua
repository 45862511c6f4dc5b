-- Check a binding request's code. A right code in 'check' mode changes nothing; in
-- 'confirm' mode it makes (or replaces) the plate's binding. A wrong one spends an attempt;
-- the last one fails the request. Returns {outcome, attempts_left or replaced, status}.
-- KEYS: request, audit
-- A code is stored as its peppered hash ('p1:' ...); requests made before the pepper have the
-- older hash keyed by the reference alone, which legacy_hash matches until they expire.
-- ARGV: mode, code_hash, legacy_hash, now_ms, max_attempts, at, audit_base_json
--!include audit.lua
--!keys binding binding_audit_of
local base = cjson.decode(A.audit_base_json)
local r = redis.call('HMGET', K.request, 'status', 'code_hash', 'expires_ms', 'attempts',
                     'plate', 'phone', 'email', 'agent_id', 'key_id', 'ref')
if not r[1] then
  audit('', '', base, 'verify_refused', {reason='unknown_reference'})
  return {'unknown', '0', ''}
end
local plate = r[5]
local plate_audit = key_binding_audit_of(plate)
if r[1] ~= 'pending' then
  audit(plate_audit, plate, base, 'verify_refused', {reason='not_pending', status=r[1]})
  return {'not_pending', '0', r[1]}
end
if tonumber(A.now_ms) > tonumber(r[3]) then
  redis.call('HSET', K.request, 'status', 'expired', 'closed_at', A.at)
  audit(plate_audit, plate, base, 'expired', {})
  return {'expired', '0', 'expired'}
end
local max = tonumber(A.max_attempts)
local attempts = tonumber(r[4] or '0') or 0
if A.code_hash ~= r[2] and A.legacy_hash ~= r[2] then
  attempts = attempts + 1
  redis.call('HSET', K.request, 'attempts', attempts)
  if attempts >= max then
    redis.call('HSET', K.request, 'status', 'failed', 'closed_at', A.at)
    audit(plate_audit, plate, base, 'failed', {reason='too_many_wrong_codes', attempts=attempts})
    return {'failed', '0', 'failed'}
  end
  audit(plate_audit, plate, base, 'code_wrong', {attempts_left=max - attempts})
  return {'wrong', tostring(max - attempts), 'pending'}
end
if A.mode == 'check' then
  audit(plate_audit, plate, base, 'code_verified', {})
  return {'ok', tostring(max - attempts), 'pending'}
end
local bkey = key_binding(plate)
local previous = redis.call('HGET', bkey, 'phone')
redis.call('DEL', bkey)
redis.call('HSET', bkey, 'plate', plate, 'phone', r[6], 'email', r[7] or '',
           'created_at', A.at, 'created_by', r[9] or '', 'channel', base['channel'],
           'agent_id', r[8] or '', 'caller_id', base['caller_id'] or '', 'ref', r[10])
redis.call('HSET', K.request, 'status', 'confirmed', 'closed_at', A.at,
           'confirmed_channel', base['channel'])
audit(plate_audit, plate, base, 'confirmed', {})
if previous then
  audit(plate_audit, plate, base, 'replaced', {phone=r[6], previous_phone=previous})
  return {'confirmed', '1', 'confirmed'}
end
audit(plate_audit, plate, base, 'created', {phone=r[6]})
return {'confirmed', '0', 'confirmed'}
