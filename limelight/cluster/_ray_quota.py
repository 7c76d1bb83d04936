"""One quota shared by many processes through a Ray actor that leases it out in chunks.

The second store of :class:`~limelight._leases.SharedQuota`, for processes that run on Ray
(hosts of a :class:`~limelight.cluster.Cluster`, Ray tasks, the driver): a named Ray actor
keeps the quotas in a :class:`~limelight._leases.QuotaLedger`, by the rules of the Redis
scripts, on its own process's clock. Each process's rate limiter leases from it through a
:class:`RayQuota`, which pickles to its name alone, so it can be given to actors spawned on
hosts.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from .._buckets import DEFAULT_SEND_DELAY, DeploymentLimits
from .._leases import (
    DEFAULT_LEASE_FRACTION,
    DEFAULT_LEASE_TTL,
    DEFAULT_RETURN_AFTER,
    Correction,
    Grant,
    QuotaLedger,
    Units,
)
from ..errors import ConfigError
from ._hosts import _get

__all__ = ["RayQuota"]


class QuotaActor:
    """The Ray actor holding the ledger (one process, one thread: every change is atomic)."""

    def __init__(self) -> None:
        self.ledger = QuotaLedger()

    def lease(
        self,
        deployment: str,
        limits: DeploymentLimits,
        holder: str,
        need: Units,
        want: Units,
        send_delay: float,
        lease_ttl: float,
    ) -> Grant:
        return self.ledger.lease(
            deployment,
            limits,
            holder=holder,
            need=need,
            want=want,
            now=time.monotonic(),
            send_delay=send_delay,
            lease_ttl=lease_ttl,
        )

    def give_back(
        self, deployment: str, limits: DeploymentLimits, holder: str, units: Units
    ) -> None:
        self.ledger.give_back(deployment, limits, holder=holder, units=units, now=time.monotonic())

    def correct(self, deployment: str, limits: DeploymentLimits, correction: Correction) -> None:
        self.ledger.correct(deployment, limits, correction, time.monotonic())

    def levels(self, deployment: str, limits: DeploymentLimits) -> dict[str, float]:
        return self.ledger.levels(deployment, limits, time.monotonic())


class RayQuota:
    """A quota shared through a named Ray actor, created by the first process that uses it
    (``RateLimiter.start(runtime, limits, shared=RayQuota())``); Ray must be initialised
    (a :class:`~limelight.cluster.Cluster` does it). Runs on asyncio and trio.

    :param name: the quota actor's name: processes giving the same name share its quotas.
    :param lease_fraction: the chunk a lease asks for beyond what is needed, as a fraction
        of each limit.
    :param return_after: seconds unused units stay in a process once nobody waits there.
    :param lease_ttl: seconds a silent holder keeps its concurrency slots.
    :param send_delay: how long a lease from a full bucket holds back its refill.
    """

    def __init__(
        self,
        name: str = "limelight-quota",
        *,
        lease_fraction: float = DEFAULT_LEASE_FRACTION,
        return_after: float = DEFAULT_RETURN_AFTER,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        send_delay: float = DEFAULT_SEND_DELAY,
    ) -> None:
        if not 0 < lease_fraction <= 1:
            raise ConfigError(f"RayQuota: lease_fraction must be in (0, 1], got {lease_fraction}")
        self.name = name
        self.lease_fraction = lease_fraction
        self.return_after = return_after
        self.lease_ttl = lease_ttl
        self.send_delay = send_delay
        self._handle: Any = None

    def __repr__(self) -> str:
        return f"RayQuota({self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}

    def _actor(self) -> Any:
        if self._handle is None:
            decorate: Any = ray.remote
            self._handle = (
                decorate(QuotaActor)
                .options(name=self.name, get_if_exists=True, num_cpus=0)
                .remote()
            )
        return self._handle

    async def lease(
        self,
        deployment: str,
        limits: DeploymentLimits,
        *,
        holder: str,
        need: Units,
        want: Units,
    ) -> Grant:
        grant: Grant = await _get(
            self._actor().lease.remote(
                deployment, limits, holder, need, want, self.send_delay, self.lease_ttl
            )
        )
        return grant

    async def give_back(
        self, deployment: str, limits: DeploymentLimits, *, holder: str, units: Units
    ) -> None:
        await _get(self._actor().give_back.remote(deployment, limits, holder, units))

    async def correct(
        self, deployment: str, limits: DeploymentLimits, correction: Correction
    ) -> None:
        await _get(self._actor().correct.remote(deployment, limits, correction))

    async def levels(
        self, deployment: str, limits: DeploymentLimits | None = None
    ) -> dict[str, float]:
        """The shared state of a deployment now (see :meth:`RedisQuota.levels`)."""
        levels: dict[str, float] = await _get(
            self._actor().levels.remote(deployment, limits or DeploymentLimits())
        )
        return levels

    async def aclose(self) -> None:
        """Nothing to close: the quota actor lives as long as the Ray job."""
