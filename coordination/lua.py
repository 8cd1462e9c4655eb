"""The Lua scripts behind every versioned write.

A record is a hash ``{v: version, d: data}``. A deleted record keeps ``v`` as a tombstone so a
re-created record continues the version sequence (no ABA: an old holder's version never matches).

The version comparison is written once, in ``PRELUDE.check``; each primitive (create, compare-and-set,
delete) is its own script built on it. Each write may carry *guards* (other records that must still be
at a given version) and *ops*: index updates applied atomically with the record write.

ARGV layout shared by all three scripts::

    ARGV[1] expected version (ignored by create)
    ARGV[2] new data (ignored by delete)
    ARGV[3] guard count G, then G pairs (KEYS index, version)
    then limit count L, then L triples (KEYS index, hash field, cap): the field must be below the cap
    then op count N, then N ops, each: name, argc, args...  (key arguments are KEYS indexes)

Reply: ``{code, version, exists, key_index}``; code 1 = written (version is the new one), 0 = version
conflict on KEYS[key_index] (version/exists describe what was found there), 2 = an admission limit
was reached (version holds the counter's value, a fifth element the field), -1 = malformed record.
"""

from __future__ import annotations

PRELUDE = r"""
local unpack = unpack or table.unpack
local function state(key)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'hash' and t ~= 'none' then return nil, false end
  local v = redis.call('HGET', key, 'v')
  if not v then
    -- data without a version is corrupt (get() says so too), not an absent record to write over
    if redis.call('HEXISTS', key, 'd') == 1 then return nil, false end
    return 0, false
  end
  local n = tonumber(v)
  if not n then return nil, false end
  return n, redis.call('HEXISTS', key, 'd') == 1
end

-- The single version comparison: `want_exists` false means "must be absent".
local function check(ki, want_version, want_exists)
  local v, e = state(KEYS[ki])
  if v == nil then return {-1, 0, 0, ki} end
  if want_exists then
    if (not e) or v ~= want_version then return {0, v, e and 1 or 0, ki} end
  elseif e then
    return {0, v, 1, ki}
  end
  return nil
end

local function guards(at)
  local g = tonumber(ARGV[at])
  for i = 0, g - 1 do
    local ki = tonumber(ARGV[at + 1 + 2 * i])
    local want = tonumber(ARGV[at + 2 + 2 * i])
    local bad = check(ki, want, want > 0)
    if bad then return nil, bad end
  end
  -- Admission limits: counter fields that must stay below a cap (checked before any write).
  local at2 = at + 1 + 2 * g
  local l = tonumber(ARGV[at2])
  for i = 0, l - 1 do
    local ki = tonumber(ARGV[at2 + 1 + 3 * i])
    local field = ARGV[at2 + 2 + 3 * i]
    local cap = tonumber(ARGV[at2 + 3 + 3 * i])
    local n = tonumber(redis.call('HGET', KEYS[ki], field) or '0')
    if n >= cap then return nil, {2, n, 1, ki, field} end
  end
  return at2 + 1 + 3 * l, nil
end

local function wake(counter, field, waits, stream, maxlen)
  local n = tonumber(redis.call('HGET', KEYS[counter], field) or '0')
  if n <= 0 then
    local payload = redis.call('HGET', KEYS[waits], field)
    if payload then
      redis.call('XADD', KEYS[stream], 'MAXLEN', '~', maxlen, '*', 'parent', field, 'payload', payload)
      redis.call('HDEL', KEYS[waits], field)
    end
    redis.call('HDEL', KEYS[counter], field)
  end
end

-- Redis keeps a script's writes up to a failing command, so every op is vetted before anything is
-- written: an op on a key of the wrong type (or an unknown op) must not leave a half-applied write.
local OP_TYPE = {ZADD = 'zset', ZREM = 'zset', SADD = 'set', SREM = 'set', HSET = 'hash', HDEL = 'hash',
  HINCRBY = 'hash', HINCRBYFLOAT = 'hash', RPUSH = 'list', SET = false, PEXPIRE = false, DEL = false,
  XADD = 'stream', CHILD_END = 'hash', WAKE_WHEN_DONE = 'hash', RELEASE = 'hash'}

local function fits(ki, want)
  local t = redis.call('TYPE', KEYS[ki])['ok']
  return t == 'none' or t == want
end

local function vet(at)
  local n = tonumber(ARGV[at]); local i = at + 1
  for _ = 1, n do
    local name = ARGV[i]; local argc = tonumber(ARGV[i + 1])
    local want = OP_TYPE[name]
    if want == nil then return redis.error_reply('unknown op ' .. tostring(name)) end
    local ki = tonumber(ARGV[i + 2])
    if want and not fits(ki, want) then return {-1, 0, 0, ki} end
    if name == 'CHILD_END' or name == 'WAKE_WHEN_DONE' then
      local waits, stream = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
      if not fits(waits, 'hash') then return {-1, 0, 0, waits} end
      if not fits(stream, 'stream') then return {-1, 0, 0, stream} end
    end
    if name == 'RELEASE' and not fits(tonumber(ARGV[i + 3]), 'hash') then return {-1, 0, 0, tonumber(ARGV[i + 3])} end
    i = i + 2 + argc
  end
  return nil
end

local function ops(at, version)
  local n = tonumber(ARGV[at]); local i = at + 1
  for _ = 1, n do
    local name = ARGV[i]; local argc = tonumber(ARGV[i + 1]); local a = {}
    for j = 1, argc do a[j] = ARGV[i + 1 + j] end
    i = i + 2 + argc
    local k = KEYS[tonumber(a[1])]
    if name == 'ZADD' then redis.call('ZADD', k, a[2], a[3])
    elseif name == 'ZREM' then redis.call('ZREM', k, a[2])
    elseif name == 'SADD' then redis.call('SADD', k, a[2])
    elseif name == 'SREM' then redis.call('SREM', k, a[2])
    elseif name == 'HSET' then redis.call('HSET', k, a[2], a[3])
    elseif name == 'HDEL' then redis.call('HDEL', k, a[2])
    elseif name == 'HINCRBY' then redis.call('HINCRBY', k, a[2], a[3])
    elseif name == 'HINCRBYFLOAT' then redis.call('HINCRBYFLOAT', k, a[2], a[3])
    elseif name == 'RPUSH' then
      for j = 2, argc do redis.call('RPUSH', k, a[j]) end
    elseif name == 'SET' then redis.call('SET', k, a[2])
    elseif name == 'PEXPIRE' then redis.call('PEXPIRE', k, a[2])
    elseif name == 'DEL' then redis.call('DEL', k)
    elseif name == 'XADD' then
      local f = {}
      for j = 3, argc do
        if a[j] == '$VERSION$' then f[#f + 1] = tostring(version) else f[#f + 1] = a[j] end
      end
      redis.call('XADD', k, 'MAXLEN', '~', a[2], '*', unpack(f))
    elseif name == 'CHILD_END' then
      redis.call('HINCRBY', k, a[2], -1)
      wake(tonumber(a[1]), a[2], tonumber(a[3]), tonumber(a[4]), a[5])
    elseif name == 'WAKE_WHEN_DONE' then
      redis.call('HSET', KEYS[tonumber(a[3])], a[2], a[6])
      wake(tonumber(a[1]), a[2], tonumber(a[3]), tonumber(a[4]), a[5])
    elseif name == 'RELEASE' then
      -- a holder's reservation leaves the reservations hash and the total it was counted in
      local held = tonumber(redis.call('HGET', k, a[3]) or '0')
      if held ~= 0 then
        redis.call('HINCRBYFLOAT', KEYS[tonumber(a[2])], a[4], -held)
        redis.call('HDEL', k, a[3])
      end
    else
      return redis.error_reply('unknown op ' .. tostring(name))
    end
  end
  return nil
end
"""

CREATE = PRELUDE + r"""
local bad = check(1, 0, false)
if bad then return bad end
local v = state(KEYS[1])
local nxt, gbad = guards(3)
if gbad then return gbad end
local vbad = vet(nxt)
if vbad then return vbad end
local new = v + 1
redis.call('HSET', KEYS[1], 'v', new, 'd', ARGV[2])
local err = ops(nxt, new)
if err then return err end
return {1, new, 1, 1}
"""

CAS = PRELUDE + r"""
local bad = check(1, tonumber(ARGV[1]), true)
if bad then return bad end
local nxt, gbad = guards(3)
if gbad then return gbad end
local vbad = vet(nxt)
if vbad then return vbad end
local new = tonumber(ARGV[1]) + 1
redis.call('HSET', KEYS[1], 'v', new, 'd', ARGV[2])
local err = ops(nxt, new)
if err then return err end
return {1, new, 1, 1}
"""

DELETE = PRELUDE + r"""
local bad = check(1, tonumber(ARGV[1]), true)
if bad then return bad end
local nxt, gbad = guards(3)
if gbad then return gbad end
local vbad = vet(nxt)
if vbad then return vbad end
local new = tonumber(ARGV[1]) + 1
redis.call('HDEL', KEYS[1], 'd')
redis.call('HSET', KEYS[1], 'v', new)
local err = ops(nxt, new)
if err then return err end
return {1, new, 0, 1}
"""
