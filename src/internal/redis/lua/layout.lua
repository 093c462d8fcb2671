-- The layout of the keys in Redis: every key, its type, every field and every packed number. This is the one
-- description of it; the other Lua files and the TypeScript (keys.ts names the keys, store.ts reads the
-- replies) refer here. The constants below it spell it out for the code.
--
-- Every key of a bucket shares one hash tag, "{<namespace>:<bucket>}" (both escaped so that no name can close
-- the tag, split it or reach into another namespace: `escapeName` in keys.ts), so a call's keys always live
-- in one Cluster slot.
--
--   {ns:bucket}:s          hash   the bucket's state and its open reservations, as fields:
--     state                       the state: the algorithms it was written for (a letter per quota: t token
--                                 bucket, s sliding window, f fixed window, c concurrency), a space, then
--                                 IEEE doubles packed with struct (little-endian):
--                                   the header (HEADER_FORMAT): lastBooked (the latest time booked at),
--                                     blockedUntil (a provider's retry hint), earliestExpiry (a lower bound of
--                                     the open reservations' expiries), expiresAt (when every key of the
--                                     bucket expires), openCount (open reservations), seq (the sequence
--                                     number of the last usage the provider reported, "o<n>" below);
--                                   then per quota (QUOTA_FORMAT):
--                                     token bucket   since, owed (tat = since + owed), epoch, charged (units
--                                                    charged so far), lastChargeAt, pending (bookings in p<i>),
--                                                    window (the window owed was written under: owed is the
--                                                    share of a window in use, kept as time, so a configuration
--                                                    with another window scales it on load, as
--                                                    TokenBucket.retune does)
--                                     sliding window total (of the log's entries), count (entries in the log)
--                                     fixed window   nothing (its windows are a key of their own)
--                                     concurrency    inflight
--                                 A quota whose algorithm changed at its index starts afresh, and so does
--                                 a state of another length (one an older layout wrote).
--     p<i>                        a token bucket's future bookings (quota i, from 0), in booking order:
--                                 "entry,amount,at;entry,amount,at;..."
--     <id>                        an open reservation's record: RECORD_FORMAT (at, the time it is booked
--                                 at), then per quota a hold (HOLD_FORMAT): kind (0 none, 1 a token bucket's
--                                 booking still pending, 2 held), amount, mark, after, chargedAt, where
--                                   token bucket   mark = its epoch (pending: the time booked at), after = units
--                                                  charged with it, chargedAt = the time charged at
--                                   sliding window mark = the time booked at
--                                   fixed window   mark = the window's index
--                                   concurrency    (amount only)
--                                 Ids are "<the Redis millisecond booked in>-<the client's token>"
--                                 (ID_PATTERN): a reservation expires at that millisecond + 1 +
--                                 reservationTtl. The token (TOKEN_PATTERN) is chosen by the client, so that
--                                 a reserve whose answer was lost can still be released by it.
--     x<token>                    a tombstone: the Redis millisecond a release found no reservation of this
--                                 token; a reserve of the token that arrives later (a stalled connection)
--                                 books nothing. Dropped once reservationTtl has passed, as orphans are.
--     w                           the waiting line (line.lua), oldest place first: "place,arrival,expiry,amount_1,...;..."
--                                 (place: a name matching TOKEN_PATTERN the client chose for a waiting caller;
--                                 arrival and expiry: Redis milliseconds; then its charge per quota). Absent when
--                                 nobody waits.
--   {ns:bucket}:q<i>:sw    zset   quota i's sliding-window log: member "entry/amount", score = the time booked at
--   {ns:bucket}:q<i>:fw    hash   quota i's fixed windows: window index -> amount booked in it
--   {ns:bucket}:q<i>:tb, :q<i>:cc never created: token buckets and concurrency keep their state in :s
--   {ns:bucket}:wake       a pub/sub channel, not a key: "1" is published on it when room may have come for the line
--   {ns:key}:b             hash   a shared circuit breaker (breaker/*.lua): o = open until, p = a probe's lease
--   {ns:key}:bf            zset   its recent failures: member unique per failure, score = when it failed
--
-- Entries (in p<i> and in a sliding-window log): a reservation's id; "<id>+" for usage settled on a quota the
-- charge left at 0; "o<n>" (n from seq) for usage the provider reported.
--
-- Numbers in replies, sorted-set scores, p<i> and fixed-window hashes are "%.17g" strings (an exact round trip;
-- a Lua number returned to Redis would be truncated to an integer), "inf" for infinity. Every key of a bucket
-- expires at one time, expiresAt: once every booking has drained and every open reservation has expired.

-- The algorithms, as the bytes of their letters.
local TB, SW, FW, CC = 116, 115, 102, 99
-- The state's header: its struct format and its bytes.
local HEADER_FORMAT, HEADER_BYTES = '<dddddd', 48
-- What each algorithm adds to the state: its struct format and its bytes.
local QUOTA_FORMAT = { [TB] = '<ddddddd', [SW] = '<dd', [FW] = '<', [CC] = '<d' }
local QUOTA_BYTES = { [TB] = 56, [SW] = 16, [FW] = 0, [CC] = 8 }
-- A token bucket's state as 0.1.0 wrote it, without its window: read, never written.
local LEGACY_TB_FORMAT = '<dddddd'
-- A reservation's record: its head, then a hold per quota.
local RECORD_FORMAT, RECORD_BYTES = '<d', 8
local HOLD_FORMAT, HOLD_BYTES = '<Bdddd', 33
local ID_PATTERN = '^%d+%-[%w]+$'
local TOKEN_PATTERN = '^[%w]+$'
local TOKEN_MAX = 64
