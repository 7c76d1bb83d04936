"""The runtime's collector policy (``Runtime(gc_policy=GcPolicy())``): a spawn burst is frozen
once it settles, the young threshold follows the population, stopped actors' state is handed
back to the collector, and everything process-wide is restored when the runtime ends."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from limelight.runtime import Actor, ConfigError, Context, GcPolicy, Runtime

pytestmark = pytest.mark.anyio


class Idle(Actor):
    async def handle(self, message: Any, ctx: Context) -> Any:
        return message


@pytest.fixture(autouse=True)
def clean_collector() -> Iterator[None]:
    """Each test starts with nothing frozen and CPython's thresholds, and leaves them so."""
    gc.unfreeze()
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


async def settled(rt: Runtime, freezes: int) -> None:
    collector = rt._collector
    assert collector is not None
    with anyio.fail_after(10):
        while collector.freezes < freezes:
            await anyio.sleep(0.01)


async def test_a_spawn_burst_is_frozen_once_it_settles_and_restored_at_the_end() -> None:
    before = gc.get_threshold()
    policy = GcPolicy(freeze_after=50, settle=0.01, young_per_actor=100)
    async with Runtime(gc_policy=policy) as rt:
        refs = [await rt.spawn(Idle()) for _ in range(60)]
        await settled(rt, 1)
        assert gc.get_freeze_count() > 0
        # 60 actors x 100 allocations each, above CPython's default
        assert gc.get_threshold()[0] == 6_000
        assert await refs[-1].ask("still answers") == "still answers"
        assert rt._collector is not None
        assert rt._collector.freezes == 1
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


async def test_no_policy_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    async with Runtime() as rt:
        for _ in range(50):
            await rt.spawn(Idle())
        await anyio.sleep(0.05)
        assert rt._collector is None
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before


async def test_the_young_threshold_is_capped() -> None:
    policy = GcPolicy(freeze_after=10, settle=0, young_per_actor=1_000, max_young=2_000)
    async with Runtime(gc_policy=policy) as rt:
        for _ in range(10):
            await rt.spawn(Idle())
        await settled(rt, 1)
        assert gc.get_threshold()[0] == 2_000


async def test_stopped_actors_state_goes_back_to_the_collector() -> None:
    """Frozen objects are never collected; once most of a frozen population has stopped, the
    policy unfreezes and collects, so a stopped actor's cycles are freed while the runtime
    goes on."""

    class Cyclic(Idle):
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the collector frees it

    policy = GcPolicy(freeze_after=20, settle=0.01)
    async with Runtime(gc_policy=policy) as rt:
        actors = [Cyclic() for _ in range(30)]
        refs = [await rt.spawn(actor) for actor in actors]
        await settled(rt, 1)
        watch = weakref.ref(actors[0])
        del actors
        for ref in refs[:25]:
            await ref.stop()
        del refs
        await settled(rt, 2)
        gc.collect()
        assert watch() is None
        assert gc.get_freeze_count() > 0  # the five left are frozen again


async def test_an_application_that_freezes_itself_is_left_to_do_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    policy = GcPolicy(freeze_after=20, settle=0.05, young_per_actor=100)
    with caplog.at_level(logging.WARNING, logger="limelight.runtime"):
        async with Runtime(gc_policy=policy) as rt:
            for _ in range(20):
                await rt.spawn(Idle())
            with anyio.fail_after(10):
                while gc.get_threshold()[0] != 2_000:  # the threshold is still scaled
                    await anyio.sleep(0.01)
            assert rt._collector is not None
            assert rt._collector.freezes == 0
    assert "calls gc.freeze() itself" in caplog.text
    # Neither unfrozen nor more frozen (objects frozen by the application may have been freed
    # since, by reference counting, so the count may only have gone down).
    assert 0 < gc.get_freeze_count() <= frozen


async def test_runtimes_share_the_policy_until_the_last_ends() -> None:
    before = gc.get_threshold()
    policy = GcPolicy(freeze_after=10, settle=0.05, young_per_actor=1_000)
    async with Runtime(gc_policy=policy) as first:
        async with Runtime(gc_policy=policy) as second:
            for _ in range(10):
                await second.spawn(Idle())
            await settled(second, 1)
        assert gc.get_threshold()[0] == 10_000  # the first still runs
        assert gc.get_freeze_count() > 0
        assert first.running
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"freeze_after": 0}, "freeze_after"),
        ({"settle": -1.0}, "settle"),
        ({"settle": float("nan")}, "settle"),
        ({"young_per_actor": -1}, "young_per_actor"),
        ({"max_young": 10}, "max_young"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        GcPolicy(**kwargs)
