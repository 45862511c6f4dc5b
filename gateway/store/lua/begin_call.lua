-- Start a call attempt in one step: unless the notice is final, gone or out of attempts, move
-- it to dialing. The worker has taken a call slot first (reserve_call.lua: the limit is one key
-- for every lane) and gives it back when this says 'skip'. The worker learns all it needs to
-- place the call from this one call. Returns {state, attempt, to, text, kind}; state: 'dial'
-- or 'skip'.
-- KEYS: notice, history, webhooks, events
-- ARGV: id, at, max_attempts
--!include transition.lua
local cur = notice_state(K.notice)
if not cur[1] or HARD[cur[1]] then return {'skip'} end
local attempt = (tonumber(cur[6] or 0) or 0) + 1
if attempt > tonumber(A.max_attempts) then return {'skip'} end
local text = redis.call('HGET', K.notice, 'text') or ''
if transition(K.notice, K.history, A.id, 'dialing', A.at, {attempt=attempt}, cur) == 0 then
  return {'skip'}
end
return {'dial', attempt, cur[12] or '', text, cur[4] or ''}
