"""Scale-out: one quota shared by many processes (Redis, Ray) and runtimes on Ray hosts.

:class:`RedisQuota` needs nothing beyond limelight: give it to each process's rate limiter
(``RateLimiter.start(runtime, limits, shared=RedisQuota(url))``). The Ray parts load on first
access and need the ``ray`` extra (``pip install 'limelight[ray]'``). A :class:`Cluster` also
runs batches (``limelight.batch.run_batch(..., cluster=cluster)``) over its hosts, and with
``analytics_dir=`` has each host record its analytics events in a store of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes
from ._redis_quota import RedisQuota as RedisQuota

if TYPE_CHECKING:
    from ._hosts import Cluster as Cluster
    from ._hosts import RemoteRef as RemoteRef
    from ._ray_quota import RayQuota as RayQuota

__all__ = ["Cluster", "RayQuota", "RedisQuota", "RemoteRef"]

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {"._hosts": ["Cluster", "RemoteRef"], "._ray_quota": ["RayQuota"]},
    extras={"._hosts": "ray", "._ray_quota": "ray"},
)
