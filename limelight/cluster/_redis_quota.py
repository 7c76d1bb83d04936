"""One quota shared by many processes through Redis: leases granted by atomic Lua scripts.

Each deployment's quota lives in one Redis hash: the requests and tokens buckets (level and
when it was last refilled, refilled continuously at ``limit / 60`` per second on Redis's own
clock, ``TIME``), the pause after a 429, and the limits; concurrency slots are counted per
holder, each holder's count expiring when it stops renewing it (a process that died gives its
slots back that way). Every change is one script, so processes never race: a lease takes
what the head of a caller's queue needs plus a chunk ahead, whole or not at all; a give-back
returns unused units; a correction applies what a server's headers or a 429 said.

Reuses limelight's own RESP client (:mod:`limelight.caches._resp`): it runs on asyncio and on
trio, over the event loop's sockets.
"""

from __future__ import annotations

import hashlib
from typing import Final

from .._buckets import DEFAULT_SEND_DELAY, DeploymentLimits
from .._leases import (
    DEFAULT_LEASE_FRACTION,
    DEFAULT_LEASE_TTL,
    DEFAULT_RETURN_AFTER,
    Correction,
    Grant,
    Units,
)
from ..caches._resp import RedisClient, RedisReplyError, pack, parse_redis_url
from ..caches._server import check_settings, setting
from ..errors import ConfigError

__all__ = ["RedisQuota"]

#: State untouched this long expires: by then its buckets are full again anyway.
_EXPIRE_SECONDS: Final = 600

_PRELUDE: Final = """
local t0 = redis.call('TIME')
local now = tonumber(t0[1]) + tonumber(t0[2]) / 1000000
local key = KEYS[1]
local function fmt(x) return string.format('%.17g', x) end
local f = redis.call('HMGET', key, 'rl', 'tl', 'cl', 'r', 'rt', 't', 'tt', 'p')
local rl = tonumber(f[1] or ARGV[1])
local tl = tonumber(f[2] or ARGV[2])
local cl = tonumber(f[3] or ARGV[3])
local function refill(level, at, lim)
  if lim <= 0 then return 0, now end
  if not level then return lim, now end
  level = tonumber(level)
  at = tonumber(at)
  if now > at then
    level = math.min(lim, level + (now - at) * lim / 60)
    at = now
  end
  return level, at
end
local r, rt = refill(f[4], f[5], rl)
local t, tt = refill(f[6], f[7], tl)
local p = tonumber(f[8] or '0')
local function save()
  redis.call('HSET', key, 'rl', fmt(rl), 'tl', fmt(tl), 'cl', fmt(cl), 'r', fmt(r),
    'rt', fmt(rt), 't', fmt(t), 'tt', fmt(tt), 'p', fmt(p))
  redis.call('EXPIRE', key, EXPIRE_SECONDS)
end
"""

# ARGV: rl tl cl holder need_r need_t need_s want_r want_t want_s hold ttl
_LEASE: Final = (
    _PRELUDE
    + """
local holder = ARGV[4]
local need_r, need_t, need_s = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local want_r, want_t, want_s = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local hold, ttl = tonumber(ARGV[11]), tonumber(ARGV[12])
local used = 0
if cl > 0 then
  local seen = redis.call('HGETALL', KEYS[3])
  for i = 1, #seen, 2 do
    if tonumber(seen[i + 1]) < now and seen[i] ~= holder then
      redis.call('HDEL', KEYS[2], seen[i])
      redis.call('HDEL', KEYS[3], seen[i])
    end
  end
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do used = used + tonumber(v) end
  redis.call('HSET', KEYS[3], holder, fmt(now + ttl))
  redis.call('EXPIRE', KEYS[2], EXPIRE_SECONDS)
  redis.call('EXPIRE', KEYS[3], EXPIRE_SECONDS)
end
if p > now then
  save()
  return {'0', '0', '0', fmt(p - now), fmt(p - now)}
end
local wait = 0
local function lacks(level, at, lim, need)
  if lim <= 0 or need <= level + 1e-9 then return 0 end
  return (need - level) * 60 / lim + math.max(0, at - now)
end
wait = math.max(lacks(r, rt, rl, need_r), lacks(t, tt, tl, need_t))
if cl > 0 and need_s > cl - used then wait = math.max(wait, 0.05) end
if wait > 0 then
  save()
  return {'0', '0', '0', fmt(wait), '0'}
end
local function take(level, at, lim, need, want)
  if lim <= 0 then return level, at, 0 end
  local g = math.max(need, math.min(want, math.max(level, 0)))
  if g > 0 and level >= lim - hold * lim / 60 then at = math.max(at, now + hold) end
  return level - g, at, g
end
local gr, gt, gs
r, rt, gr = take(r, rt, rl, need_r, want_r)
t, tt, gt = take(t, tt, tl, need_t, want_t)
gs = 0
if cl > 0 then
  gs = math.max(need_s, math.min(want_s, cl - used))
  if gs > 0 then redis.call('HINCRBY', KEYS[2], holder, gs) end
end
save()
return {fmt(gr), fmt(gt), tostring(gs), '0', '0'}
"""
)

# ARGV: rl tl cl holder r t s
_GIVE: Final = (
    _PRELUDE
    + """
local holder = ARGV[4]
local gr, gt, gs = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if rl > 0 then r = math.min(rl, r + gr) end
if tl > 0 then t = math.min(tl, t + gt) end
if gs > 0 then
  local left = redis.call('HINCRBY', KEYS[2], holder, -gs)
  if left <= 0 then
    redis.call('HDEL', KEYS[2], holder)
    redis.call('HDEL', KEYS[3], holder)
  end
end
save()
return 1
"""
)

# ARGV: rl tl cl rlim rrem tlim trem age pause ('' where not known)
_CORRECT: Final = (
    _PRELUDE
    + """
local age = tonumber(ARGV[8])
local function follow(lim, level, at, new_limit, remaining)
  if new_limit ~= '' then
    local v = tonumber(new_limit)
    if v >= 1 and v ~= lim then
      if lim <= 0 then level, at = v, now end
      lim = v
      level = math.min(level, lim)
    end
  end
  if remaining ~= '' and lim > 0 then
    level = math.min(level, tonumber(remaining) + age * lim / 60)
  end
  return lim, level, at
end
rl, r, rt = follow(rl, r, rt, ARGV[4], ARGV[5])
tl, t, tt = follow(tl, t, tt, ARGV[6], ARGV[7])
if ARGV[9] ~= '' then p = math.max(p, now + tonumber(ARGV[9])) end
save()
return 1
"""
)

# ARGV: rl tl cl -> the levels now, for inspection (changes nothing)
_READ: Final = (
    _PRELUDE
    + """
local used = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do used = used + tonumber(v) end
return {fmt(rl), fmt(r), fmt(tl), fmt(t), fmt(cl), tostring(used), fmt(math.max(0, p - now))}
"""
)


class _Script:
    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source.replace("EXPIRE_SECONDS", str(_EXPIRE_SECONDS)).encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()


_SCRIPTS: Final = {
    name: _Script(source)
    for name, source in (("lease", _LEASE), ("give", _GIVE), ("correct", _CORRECT), ("read", _READ))
}


def _limit(value: int | None) -> bytes:
    return b"0" if value is None else b"%d" % value


def _optional(value: float | None) -> bytes:
    return b"" if value is None else repr(float(value)).encode()


class RedisQuota:
    """A quota shared through Redis by every process whose rate limiter is given one
    (``RateLimiter.start(runtime, limits, shared=RedisQuota(url))``): replicas of a service,
    workers of a batch, Ray hosts. See :mod:`limelight._leases` for how a limiter spends it.

    The limits a limiter is configured with are used when Redis has none for the deployment
    yet; from then on Redis's are the truth, changed only by a server's
    ``x-ratelimit-limit-*`` headers. Runs on asyncio and trio; usable from several event
    loops in turn (a loop's connections are dropped when another uses it).

    :param url: ``redis://...`` (see :class:`~limelight.caches.RedisCache`); ``None`` reads
        ``REDIS_URL``.
    :param namespace: prefix of the keys, so several quotas share a server.
    :param lease_fraction: the chunk a lease asks for beyond what is needed, as a fraction
        of each limit.
    :param return_after: seconds unused units stay in a process once nobody waits there.
    :param lease_ttl: seconds a silent holder keeps its concurrency slots.
    :param send_delay: how long a lease from a full bucket holds back its refill (the
        server's bucket stays full until it sees the calls; see
        :data:`~limelight._buckets.DEFAULT_SEND_DELAY`).
    :param timeout: seconds a command may take, connecting included.
    :raises ConfigError: no URL, a URL that is not Redis's, or a bad setting.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "limelight:quota:",
        lease_fraction: float = DEFAULT_LEASE_FRACTION,
        return_after: float = DEFAULT_RETURN_AFTER,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        send_delay: float = DEFAULT_SEND_DELAY,
        timeout: float = 2.0,
        max_connections: int = 8,
    ) -> None:
        raw = setting(
            url, "REDIS_URL", owner="RedisQuota", param="url", example="redis://localhost:6379/0"
        )
        address = parse_redis_url(raw, where="url" if url is not None else "REDIS_URL")
        check_settings("RedisQuota", timeout=timeout, max_connections=max_connections)
        if not 0 < lease_fraction <= 1:
            raise ConfigError(f"RedisQuota: lease_fraction must be in (0, 1], got {lease_fraction}")
        for name, value in (
            ("return_after", return_after),
            ("lease_ttl", lease_ttl),
            ("send_delay", send_delay),
        ):
            if value < 0:
                raise ConfigError(f"RedisQuota: {name} must be >= 0, got {value}")
        self.url = address.display
        self.namespace = namespace
        self.lease_fraction = lease_fraction
        self.return_after = return_after
        self.lease_ttl = lease_ttl
        self.send_delay = send_delay
        self._client = RedisClient(address, max_connections=max_connections, timeout=timeout)

    def __repr__(self) -> str:
        return f"RedisQuota({self.url!r}, namespace={self.namespace!r})"

    def _keys(self, deployment: str) -> tuple[bytes, bytes, bytes]:
        # One hash tag per deployment: the three keys stay on one node of a Redis Cluster.
        key = f"{self.namespace}{{{deployment}}}".encode()
        return key, key + b":slots", key + b":seen"

    async def _run(
        self, name: str, deployment: str, limits: DeploymentLimits, *args: bytes
    ) -> object:
        script = _SCRIPTS[name]
        keys = self._keys(deployment)
        argv = (_limit(limits.rpm), _limit(limits.tpm), _limit(limits.max_concurrency), *args)
        tail = (b"3", *keys, *argv)
        try:
            return await self._client.request(pack(b"EVALSHA", script.sha, *tail))
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self._client.request(pack(b"EVAL", script.source, *tail))

    async def lease(
        self,
        deployment: str,
        limits: DeploymentLimits,
        *,
        holder: str,
        need: Units,
        want: Units,
    ) -> Grant:
        reply = await self._run(
            "lease",
            deployment,
            limits,
            holder.encode(),
            repr(need.requests).encode(),
            repr(need.tokens).encode(),
            b"%d" % need.slots,
            repr(want.requests).encode(),
            repr(want.tokens).encode(),
            b"%d" % want.slots,
            repr(self.send_delay).encode(),
            repr(self.lease_ttl).encode(),
        )
        assert isinstance(reply, list)
        requests, tokens, slots, retry_after, paused_for = (float(v) for v in reply)
        return Grant(
            units=Units(requests=requests, tokens=tokens, slots=int(slots)),
            retry_after=retry_after,
            paused_for=paused_for,
        )

    async def give_back(
        self, deployment: str, limits: DeploymentLimits, *, holder: str, units: Units
    ) -> None:
        await self._run(
            "give",
            deployment,
            limits,
            holder.encode(),
            repr(float(units.requests)).encode(),
            repr(float(units.tokens)).encode(),
            b"%d" % units.slots,
        )

    async def correct(
        self, deployment: str, limits: DeploymentLimits, correction: Correction
    ) -> None:
        await self._run(
            "correct",
            deployment,
            limits,
            _optional(correction.requests_limit),
            _optional(correction.requests_remaining),
            _optional(correction.tokens_limit),
            _optional(correction.tokens_remaining),
            repr(float(correction.age)).encode(),
            _optional(correction.pause),
        )

    async def levels(
        self, deployment: str, limits: DeploymentLimits | None = None
    ) -> dict[str, float]:
        """The shared state of a deployment now, unleased units after refill (for tests and
        monitoring): ``rpm``, ``requests``, ``tpm``, ``tokens``, ``max_concurrency``,
        ``slots_held``, ``paused_for``."""
        reply = await self._run("read", deployment, limits or DeploymentLimits())
        assert isinstance(reply, list)
        names = ("rpm", "requests", "tpm", "tokens", "max_concurrency", "slots_held", "paused_for")
        return {name: float(value) for name, value in zip(names, reply, strict=True)}

    async def aclose(self) -> None:
        await self._client.aclose()
