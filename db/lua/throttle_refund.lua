-- Takes one event of an earlier reservation back out of each bucket (accounts.throttle).
-- KEYS: the buckets. ARGV: per bucket its emission interval (ms).
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
for i, key in ipairs(KEYS) do
    local tat = tonumber(redis.call('GET', key))
    if tat then
        local new_tat = tat - tonumber(ARGV[i])
        if new_tat <= now then
            redis.call('DEL', key)
        else
            redis.call('SET', key, string.format('%d', new_tat), 'PX',
                       string.format('%d', new_tat - now))
        end
    end
end
return 1
