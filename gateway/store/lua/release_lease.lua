-- Release a lease (a job's dispatcher) only if the one asking still holds it: a clean stop
-- hands the job on at once instead of after the lease runs out.
-- KEYS: lease
-- ARGV: holder
if redis.call('GET', K.lease) == A.holder then return redis.call('DEL', K.lease) end
return 0
