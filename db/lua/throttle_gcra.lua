-- KEYS[1]: the bucket. ARGV: emission interval (ms), burst size, cost (0 only looks).
-- The bucket holds the "theoretical arrival time" (TAT) of the next event, in ms.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local interval = tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval * math.max(cost, 1)
local allow_at = new_tat - capacity
if allow_at > now then
    return {0, allow_at - now}
end
if cost > 0 then
    local ttl = string.format('%d', new_tat - now)
    redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl)
end
return {1, 0}
