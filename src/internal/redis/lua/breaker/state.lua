-- Reads the circuit without changing it: {'C', failures}, {'H'} half-open, {'O', until}.
if openUntil and now < openUntil then return { 'O', string.format('%.3f', openUntil) } end
if openUntil then return { 'H' } end
return { 'C', tostring(redis.call('ZCOUNT', KEYS[2], string.format('(%.3f', now - windowMs), '+inf')) }
