"""The runtime's collector policy: by default the young threshold follows the actor population
(only while it is CPython's default, and handed back at the end); with ``freeze=True`` a spawn
burst is frozen once it settles and stopped actors' state is handed back to the collector;
everything process-wide is restored when the last runtime ends."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from limelight.runtime import Actor, ConfigError, Context, GcPolicy, Runtime
from limelight.runtime._gc import CPYTHON_YOUNG, _Process

pytestmark = pytest.mark.anyio

#: CPython's default thresholds (700 or 2,000 for the young generation, by version).
DEFAULTS = (CPYTHON_YOUNG, 10, 10)
#: Actors whose default threshold (2 each) is just above CPython's.
ABOVE = CPYTHON_YOUNG // 2 + 150


class Idle(Actor):
    async def handle(self, message: Any, ctx: Context) -> Any:
        return message


@pytest.fixture(autouse=True)
def clean_collector() -> Iterator[None]:
    """Each test starts with nothing frozen and CPython's default thresholds, and leaves the
    thresholds as it found them."""
    gc.unfreeze()
    before = gc.get_threshold()
    gc.set_threshold(*DEFAULTS)
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.fixture
def young() -> Callable[..., int]:
    """The young threshold a policy gives ``actors`` more actors: the population is the
    process's, and runtimes that outlive a test (the roles' shared runtime) count too."""
    others, their_cap = _Process.wanted, _Process.cap if _Process.caps else 50_000

    def threshold(actors: int, per_actor: int = 2, cap: int = 50_000) -> int:
        return min(cap, their_cap, max(CPYTHON_YOUNG, others + per_actor * actors))

    return threshold


async def settled(rt: Runtime, freezes: int) -> None:
    collector = rt._collector
    assert collector is not None
    with anyio.fail_after(10):
        while collector.freezes < freezes:
            await anyio.sleep(0.01)


async def test_the_young_threshold_follows_the_population_by_default(
    young: Callable[..., int],
) -> None:
    async with Runtime() as rt:
        refs = [await rt.spawn(Idle()) for _ in range(ABOVE - 200)]
        assert gc.get_threshold() == (young(ABOVE - 200), 10, 10)
        refs += [await rt.spawn(Idle()) for _ in range(200)]
        assert gc.get_threshold() == (young(ABOVE), 10, 10) != DEFAULTS
        for ref in refs[:100]:
            await ref.stop()
        assert gc.get_threshold() == (young(ABOVE - 100), 10, 10)
        assert await refs[-1].ask("still answers") == "still answers"
        await anyio.sleep(0.1)  # nothing is frozen by default, burst or not
        assert gc.get_freeze_count() == 0
        assert rt._collector is not None
        assert rt._collector.freezes == 0
    assert gc.get_threshold() == DEFAULTS


async def test_no_policy_leaves_the_collector_alone() -> None:
    async with Runtime(gc_policy=None) as rt:
        for _ in range(ABOVE):
            await rt.spawn(Idle())
        await anyio.sleep(0.05)
        assert rt._collector is None
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == DEFAULTS


async def test_an_applications_own_threshold_is_left_alone() -> None:
    gc.set_threshold(1_000, 10, 10)
    async with Runtime() as rt:
        for _ in range(ABOVE):
            await rt.spawn(Idle())
        assert gc.get_threshold() == (1_000, 10, 10)
    assert gc.get_threshold() == (1_000, 10, 10)


async def test_an_application_that_sets_its_own_threshold_meanwhile_takes_over(
    caplog: pytest.LogCaptureFixture, young: Callable[..., int]
) -> None:
    with caplog.at_level(logging.INFO, logger="limelight.runtime"):
        async with Runtime(gc_policy=GcPolicy(young_per_actor=10)) as rt:
            for _ in range(300):
                await rt.spawn(Idle())
            assert gc.get_threshold() == (young(300, 10), 10, 10)
            gc.set_threshold(5_000, 10, 10)  # the application's own choice
            for _ in range(100):
                await rt.spawn(Idle())
            assert gc.get_threshold() == (5_000, 10, 10)
            assert "set to 5000 by someone else" in caplog.text
            gc.set_threshold(*DEFAULTS)  # CPython's default again: the policy's to set
            await rt.spawn(Idle())
            assert gc.get_threshold() == (young(401, 10), 10, 10)
            gc.set_threshold(6_000, 10, 10)
        assert gc.get_threshold() == (6_000, 10, 10)  # theirs: not "restored" at the end


async def test_cyclic_garbage_is_still_collected_while_the_threshold_is_raised(
    young: Callable[..., int],
) -> None:
    """Nothing escapes the collector: the application's cycles are freed by the young
    collections CPython runs by itself, only after more new objects than by default."""

    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the collector frees it

    async with Runtime(gc_policy=GcPolicy(young_per_actor=10)) as rt:
        for _ in range(300):
            await rt.spawn(Idle())
        assert gc.get_threshold()[0] == young(300, 10) >= 3_000
        watch = weakref.ref(node := Node())
        del node
        assert watch() is not None  # garbage, waiting for the collector
        kept = [[] for _ in range(100_000)]  # new objects, kept: no gc.collect() anywhere
        assert watch() is None
        del kept


async def test_the_young_threshold_is_capped() -> None:
    policy = GcPolicy(young_per_actor=1_000, max_young=2_500)
    async with Runtime(gc_policy=policy) as rt:
        for _ in range(10):
            await rt.spawn(Idle())
        assert gc.get_threshold()[0] == 2_500


async def test_a_spawn_burst_is_frozen_once_it_settles_and_restored_at_the_end(
    young: Callable[..., int],
) -> None:
    policy = GcPolicy(freeze=True, freeze_after=50, settle=0.01, young_per_actor=100)
    async with Runtime(gc_policy=policy) as rt:
        refs = [await rt.spawn(Idle()) for _ in range(60)]
        await settled(rt, 1)
        assert gc.get_freeze_count() > 0
        # 60 actors x 100 allocations each, above CPython's default
        assert gc.get_threshold()[0] == young(60, 100) >= 6_000
        assert await refs[-1].ask("still answers") == "still answers"
        assert rt._collector is not None
        assert rt._collector.freezes == 1
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == DEFAULTS


async def test_stopped_actors_state_goes_back_to_the_collector() -> None:
    """Frozen objects are never collected; once most of a frozen population has stopped, the
    policy unfreezes and collects, so a stopped actor's cycles are freed while the runtime
    goes on."""

    class Cyclic(Idle):
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the collector frees it

    policy = GcPolicy(freeze=True, freeze_after=20, settle=0.01)
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
    caplog: pytest.LogCaptureFixture, young: Callable[..., int]
) -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    policy = GcPolicy(freeze=True, freeze_after=20, settle=0.05, young_per_actor=200)
    with caplog.at_level(logging.WARNING, logger="limelight.runtime"):
        async with Runtime(gc_policy=policy) as rt:
            for _ in range(20):
                await rt.spawn(Idle())
            with anyio.fail_after(10):
                while gc.get_threshold()[0] != young(20, 200):  # still scaled
                    await anyio.sleep(0.01)
            assert rt._collector is not None
            assert rt._collector.freezes == 0
    assert "calls gc.freeze() itself" in caplog.text
    # Neither unfrozen nor more frozen (objects frozen by the application may have been freed
    # since, by reference counting, so the count may only have gone down).
    assert 0 < gc.get_freeze_count() <= frozen


async def test_runtimes_share_the_population_and_the_frozen_state_until_the_last_ends(
    young: Callable[..., int],
) -> None:
    policy = GcPolicy(freeze=True, freeze_after=100, settle=0.05, young_per_actor=30)
    async with Runtime(gc_policy=policy) as first:
        for _ in range(100):
            await first.spawn(Idle())
        async with Runtime(gc_policy=policy) as second:
            for _ in range(100):
                await second.spawn(Idle())
            await settled(second, 1)
            assert gc.get_threshold()[0] == young(200, 30)  # the two's actors x 30
        assert gc.get_threshold()[0] == young(100, 30)  # the first's 100 go on
        assert gc.get_freeze_count() > 0  # and so does the first's freezing
        assert first.running
    assert gc.get_threshold() == DEFAULTS
    assert gc.get_freeze_count() == 0


async def test_a_runtime_with_its_own_policy_leaves_the_others_theirs(
    young: Callable[..., int],
) -> None:
    """A runtime that goes on with the default policy (as the roles' shared runtime does)
    keeps its share of the threshold, and does not keep another's frozen state frozen."""
    async with Runtime() as outer:
        for _ in range(50):
            await outer.spawn(Idle())
        policy = GcPolicy(freeze=True, freeze_after=10, settle=0.01, young_per_actor=100)
        async with Runtime(gc_policy=policy) as inner:
            for _ in range(10):
                await inner.spawn(Idle())
            await settled(inner, 1)
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold()[0] == young(10, 100) + 2 * 50
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold()[0] == young(50)
        assert outer.running


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
