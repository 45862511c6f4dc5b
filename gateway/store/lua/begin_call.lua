-- Start a call attempt in one step: unless the notice is final, gone or out of attempts,
-- take a slot under the concurrent-call limit every worker shares and move the notice to
-- dialing. A slot is never held by a notice that did not dial, and the worker learns all it
-- needs to place the call from this one call. A slot left by a process that died expires by
-- itself. Returns {state, attempt, to, text, kind}; state: 'dial', 'full' (no slot now) or
-- 'skip'.
-- KEYS: notice, history, webhooks, jobs_active, events, active_calls
-- ARGV: id, at, ttl_ms, max_calls, max_attempts
--!include transition.lua
local cur = notice_state(K.notice)
if not cur[1] or HARD[cur[1]] then return {'skip'} end
local attempt = (tonumber(cur[6] or 0) or 0) + 1
if attempt > tonumber(A.max_attempts) then return {'skip'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', K.active_calls, '-inf', now)
if redis.call('ZCARD', K.active_calls) >= tonumber(A.max_calls) then return {'full'} end
local text = redis.call('HGET', K.notice, 'text') or ''
if transition(K.notice, K.history, A.id, 'dialing', A.at, {attempt=attempt}, cur) == 0 then
  return {'skip'}
end
-- The slot's member is the call's ActionID (not a key name).
redis.call('ZADD', K.active_calls, now + tonumber(A.ttl_ms), string.format('%s:%d', A.id, attempt))
return {'dial', attempt, cur[12] or '', text, cur[4] or ''}
