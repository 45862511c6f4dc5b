-- A receipt parked in this lane was applied in its notice's lane (gateway/store/sms_writes.py):
-- its parked copies go, each only if it is still this receipt's (another may have taken a
-- form since), and so does its entry among the parked and the unmatched.
-- KEYS: receipts_parked, receipts_unmatched
-- KEYS+: the keys it was parked under
-- ARGV: value, member
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == A.value then redis.call('DEL', KEYS[i]) end
end
redis.call('ZREM', K.receipts_parked, A.member)
redis.call('ZREM', K.receipts_unmatched, A.member)
return 1
