-- Counts one event in EVERY bucket, or in none when one of them is full (accounts.throttle).
-- KEYS: the buckets. ARGV: per bucket its emission interval (ms) and burst size.
-- Each bucket holds the "theoretical arrival time" (TAT) of its next event, in ms.
-- Answers {1, 0, 0} when counted, else {0, wait ms, index of the first full bucket}.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local new_tats = {}
local wait, full = 0, 0
for i, key in ipairs(KEYS) do
    local interval = tonumber(ARGV[2 * i - 1])
    local capacity = interval * tonumber(ARGV[2 * i])
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    new_tats[i] = tat + interval
    local allow_at = new_tats[i] - capacity
    if allow_at > now then
        if full == 0 then full = i end
        if allow_at - now > wait then wait = allow_at - now end
    end
end
if full > 0 then
    return {0, wait, full}
end
for i, key in ipairs(KEYS) do
    redis.call('SET', key, string.format('%d', new_tats[i]), 'PX',
               string.format('%d', new_tats[i] - now))
end
return {1, 0, 0}
