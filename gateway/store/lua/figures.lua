-- Fragment: the figures of GET /v1/stats (names in gateway.core.figures): a counter in the
-- hour bucket of the notice it is about (its stats_hour) and in the all-time total.
-- Scripts that apply many events at once set FIGURES to a table: the counts then add up
-- there and flush_figures writes each once, instead of two writes per event.
--!keys figures
local FIGURES_TTL = 3 * 366 * 86400
local FIGURES = nil
local function add_figure(hour, name, by)
  local key = key_figures(hour)
  if redis.call('HINCRBY', key, name, by) == by then redis.call('EXPIRE', key, FIGURES_TTL) end
  redis.call('HINCRBY', key_figures('total'), name, by)
end
local function figure(hour, name, by)
  if not hour or hour == '' then return end
  by = by or 1
  if FIGURES then
    local h = FIGURES[hour]
    if not h then
      h = {}
      FIGURES[hour] = h
    end
    h[name] = (h[name] or 0) + by
    return
  end
  add_figure(hour, name, by)
end
local function flush_figures()
  for hour, names in pairs(FIGURES) do
    for name, by in pairs(names) do add_figure(hour, name, by) end
  end
  FIGURES = {}
end
-- A figure's name from its parts: ('accident', 'injury', 'delivered') -> accident:injury:delivered.
local function figure_name(...) return table.concat({...}, ':') end
local function hour_of(ms) return tostring(math.floor(tonumber(ms) / 3600000)) end
