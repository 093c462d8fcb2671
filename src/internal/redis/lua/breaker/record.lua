-- After a call: ARGV[3..6] threshold, probe (1/0), failed (1/0), a unique member for the failure log.
-- Reply: 'C' closed | 'O' open.
local threshold, probe, failed = tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5] == '1'
if probe then redis.call('HDEL', KEYS[1], 'p') end
if not failed then
  if probe then redis.call('DEL', KEYS[1], KEYS[2]) end
  return 'C'
end
if probe then
  redis.call('HSET', KEYS[1], 'o', string.format('%.3f', now + openMs))
  redis.call('PEXPIRE', KEYS[1], keep)
  return 'O'
end
redis.call('ZADD', KEYS[2], string.format('%.3f', now), ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%.3f', now - windowMs))
if redis.call('ZCARD', KEYS[2]) >= threshold then
  redis.call('HSET', KEYS[1], 'o', string.format('%.3f', now + openMs))
  redis.call('HDEL', KEYS[1], 'p')
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('DEL', KEYS[2])
  return 'O'
end
redis.call('PEXPIRE', KEYS[2], keep)
return 'C'
