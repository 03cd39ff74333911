-- KEYS[1] = counts key; ARGV = version, counts JSON, TTL seconds, channel ('' = none), message
-- A deleted poll's key holds only `deleted` (votes.counts.forget_counts): nothing is
-- written or published for it.
if redis.call('HEXISTS', KEYS[1], 'deleted') == 1 then
    return 0
end
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then
    return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'counts', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if ARGV[4] ~= '' then
    redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return 1
