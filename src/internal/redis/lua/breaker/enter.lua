-- Before a call: {'C'} closed, {'P'} this call is the probe, {'O', retryAfterMs} open.
if openUntil and now < openUntil then return { 'O', string.format('%.3f', openUntil - now) } end
if openUntil then
  if probing and probing > now then return { 'O', '0' } end
  redis.call('HSET', KEYS[1], 'p', string.format('%.3f', now + openMs))
  redis.call('PEXPIRE', KEYS[1], keep)
  return { 'P' }
end
return { 'C' }
