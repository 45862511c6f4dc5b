-- Move a notice to a status unless it is already final or further along. Returns 1 if it
-- moved.
-- KEYS: notice, history, webhooks, events
-- ARGV: id, status, at, detail_json
--!include transition.lua
return transition(K.notice, K.history, A.id, A.status, A.at, cjson.decode(A.detail_json))
