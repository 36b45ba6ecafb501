"""How many unauthenticated footage requests one client address may make (contract §5, 429).

Anyone can send a footage request with no token, and each refused one is written to the
audit log and shows in the customer's access log. The limit keeps that from becoming a way
to flood either: each address has a token bucket that refills at the configured rate, and a
request over it is refused 429 without an audit event, counted in metrics instead
(docs/security.md). Only failed authentications draw from the bucket, so a signed-in caller
behind the same address is never held back by someone else's attempts.

The address is the one the audit log records: the socket's peer, or `X-Forwarded-For` from
FOOTGW_TRUSTED_PROXIES only. Buckets are per process (each replica allows its own rate), and
at most MAX_ADDRESSES are kept, the least recently seen dropped first, so a sweep of spoofed
or many addresses cannot grow memory without bound. An IPv6 address counts by its /64: one
host is routinely given a whole /64 (RFC 4291 §2.5.4) and can send from any address in it, so
a bucket per IPv6 address would be no limit at all.

The event loop calls admit() with no await inside it, so reading and spending a token is one
step that concurrent requests cannot interleave (STYLE §17).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_ADDRESSES = 10_000
IPV6_PREFIX = 64


def bucket_key(address: str | None) -> str:
    """The bucket an address draws from: an IPv4 address (also written as IPv6), an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "-"  # not an address (a test client's name): itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class AttemptLimiter:
    """Token buckets of unauthenticated attempts, one per client address."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    max_addresses: int = MAX_ADDRESSES
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)

    def admit(self, address: str | None) -> bool:
        """Spend one attempt of `address`; False when it has none left (a 429)."""
        key = bucket_key(address)
        now = self.clock()
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.per_minute), now)
        refill = max(0.0, now - bucket.at) * self.per_minute / 60.0
        bucket.tokens, bucket.at = min(float(self.per_minute), bucket.tokens + refill), now
        admitted = bucket.tokens >= 1.0
        if admitted:
            bucket.tokens -= 1.0
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        return admitted

    def retry_after(self, address: str | None) -> int:
        """Whole seconds until `address` has an attempt again (the Retry-After header)."""
        bucket = self._buckets.get(bucket_key(address))
        missing = 1.0 - (bucket.tokens if bucket else 1.0)
        return max(1, int(missing * 60.0 / self.per_minute + 0.999))
