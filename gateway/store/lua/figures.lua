-- Fragment: the figures of GET /v1/stats (names in gateway.core.figures): a counter in the
-- hour bucket of the notice it is about (its stats_hour) and in the all-time total.
--!keys figures
local FIGURES_TTL = 3 * 366 * 86400
local function figure(hour, name, by)
  if not hour or hour == '' then return end
  by = by or 1
  local key = key_figures(hour)
  if redis.call('HINCRBY', key, name, by) == by then redis.call('EXPIRE', key, FIGURES_TTL) end
  redis.call('HINCRBY', key_figures('total'), name, by)
end
-- A figure's name from its parts: ('accident', 'injury', 'delivered') -> accident:injury:delivered.
local function figure_name(...) return table.concat({...}, ':') end
local function hour_of(ms) return tostring(math.floor(tonumber(ms) / 3600000)) end
