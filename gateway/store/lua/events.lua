-- Fragment: one entry on the events stream, which GET /v1/events/stream serves (and replays
-- from Last-Event-ID). Every status change, new notice, suspected cloned plate, accident
-- reply and follow-up is written here in the same script call that makes it, so a reader
-- that resumes from an entry id misses nothing. The stream is capped (approximately, the
-- cheap way) at EVENTS_MAXLEN entries: docs/api.md says how long that lasts.
-- Fields: type, id, kind, channel, status, at, key (the owning API key's id), to (masked),
-- and per type a few more (job, plate, count, reply, outcome).
-- NEEDS: events
local EVENTS_MAXLEN = 200000
-- 138****8000 (gateway.core.phones.mask); an email address as a***@host.
local function masked_to(to)
  if not to or to == '' then return '' end
  local at_sign = string.find(to, '@', 1, true)
  if at_sign then return string.sub(to, 1, 1) .. '***' .. string.sub(to, at_sign) end
  if #to > 11 then to = string.sub(to, -11) end
  if #to < 8 then return string.rep('*', #to) end
  return string.sub(to, 1, 3) .. string.rep('*', #to - 7) .. string.sub(to, -4)
end
-- extra: a table of further fields (string or number values), or nil.
local function stream_event(type, id, kind, channel, status, at, key_id, to, extra)
  local f = {'type', type, 'id', id, 'kind', kind or '', 'channel', channel or '',
             'status', status or '', 'at', at, 'key', key_id or '', 'to', masked_to(to)}
  if extra then
    for k, v in pairs(extra) do
      if v ~= nil and v ~= '' then f[#f + 1] = k; f[#f + 1] = tostring(v) end
    end
  end
  redis.call('XADD', K.events, 'MAXLEN', '~', EVENTS_MAXLEN, '*', unpack(f))
end
