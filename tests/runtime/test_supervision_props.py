"""Property tests of supervision: the pure decisions against models, then the running kernel
against a model of a supervisor under random crashes, normal exits, stops and asks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from limelight.runtime import (
    ActorCrashed,
    ActorState,
    ActorStopped,
    Context,
    Restart,
    RestartIntensity,
    Runtime,
    Strategy,
    Supervision,
)
from limelight.runtime._supervision import restart_targets, should_restart

from ._actors import Recorder

# -- RestartIntensity ----------------------------------------------------------------------


class IntensityMachine(RuleBasedStateMachine):
    """RestartIntensity against a plain list of every recorded timestamp."""

    @initialize(max_restarts=st.integers(0, 5), within=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    def setup(self, max_restarts: int, within: float) -> None:
        self.intensity = RestartIntensity(max_restarts, within)
        self.max_restarts = max_restarts
        self.within = within
        self.now = 1000.0
        self.times: list[float] = []
        self.allowed: list[float] = []

    def in_window(self, times: list[float], end: float) -> int:
        return sum(1 for t in times if end - self.within < t <= end)

    @rule(fraction=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5]) | st.floats(0, 3))
    def advance(self, fraction: float) -> None:
        self.now += fraction * self.within

    @rule()
    def record(self) -> None:
        self.times.append(self.now)
        ok = self.intensity.record(self.now)
        assert ok == (self.in_window(self.times, self.now) <= self.max_restarts)
        if ok:
            self.allowed.append(self.now)

    @invariant()
    def count_matches_the_model(self) -> None:
        assert self.intensity.count(self.now) == self.in_window(self.times, self.now)

    @invariant()
    def never_allows_more_than_max_restarts_in_any_window(self) -> None:
        # The busiest window ends at one of the allowed restarts.
        for end in self.allowed:
            assert self.in_window(self.allowed, end) <= self.max_restarts


TestRestartIntensity = IntensityMachine.TestCase
TestRestartIntensity.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# -- restart_targets and should_restart ---------------------------------------------------


class TargetsMachine(RuleBasedStateMachine):
    """A supervisor's child list (start order) under spawns, stops and exits; each exit is
    checked against should_restart and restart_targets, then applied as the kernel does."""

    children = Bundle("children")

    def __init__(self) -> None:
        super().__init__()
        self.started: list[int] = []  # live children, in start order
        self.policy: dict[int, Restart] = {}
        self.next_id = 0

    @rule(target=children, policy=st.sampled_from(Restart))
    def spawn(self, policy: Restart) -> int:
        child = self.next_id
        self.next_id += 1
        self.started.append(child)
        self.policy[child] = policy
        return child

    @rule(child=consumes(children))
    def stop(self, child: int) -> None:
        if child in self.started:
            self.started.remove(child)

    @precondition(lambda self: bool(self.started))
    @rule(data=st.data(), strategy=st.sampled_from(Strategy), crashed=st.booleans())
    def exit(self, data: st.DataObject, strategy: Strategy, crashed: bool) -> None:
        failed = data.draw(st.sampled_from(self.started))
        policy = self.policy[failed]
        expected = policy is Restart.PERMANENT or (policy is Restart.TRANSIENT and crashed)
        assert should_restart(policy, crashed=crashed) == expected
        if not expected:
            self.started.remove(failed)
            return
        targets = restart_targets(strategy, list(self.started), failed)
        position = self.started.index(failed)
        if strategy is Strategy.ONE_FOR_ONE:
            assert targets == [failed]
        elif strategy is Strategy.ONE_FOR_ALL:
            assert targets == self.started
        else:
            assert targets == self.started[position:]
        assert failed in targets
        assert targets == sorted(targets, key=self.started.index)  # start order
        for child in targets:  # temporary siblings are stopped, not restarted
            if child != failed and self.policy[child] is Restart.TEMPORARY:
                self.started.remove(child)


TestRestartTargets = TargetsMachine.TestCase
TestRestartTargets.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


@given(policy=st.sampled_from(Restart), crashed=st.booleans())
def test_should_restart_table(policy: Restart, crashed: bool) -> None:
    table = {
        (Restart.PERMANENT, True): True,
        (Restart.PERMANENT, False): True,
        (Restart.TRANSIENT, True): True,
        (Restart.TRANSIENT, False): False,
        (Restart.TEMPORARY, True): False,
        (Restart.TEMPORARY, False): False,
    }
    assert should_restart(policy, crashed=crashed) is table[policy, crashed]


# -- the running kernel against a model ----------------------------------------------------


@dataclass
class SupervisorModel:
    """What a supervisor with these children should do, written without the kernel's code."""

    strategy: Strategy
    policies: list[Restart]
    max_restarts: int
    alive: list[bool] = field(init=False)
    restarts: list[int] = field(init=False)
    restart_events: int = 0
    gave_up: bool = False

    def __post_init__(self) -> None:
        self.alive = [True] * len(self.policies)
        self.restarts = [0] * len(self.policies)

    def restarted(self, i: int, *, crashed: bool) -> bool:
        policy = self.policies[i]
        return policy is Restart.PERMANENT or (policy is Restart.TRANSIENT and crashed)

    def gives_up_with_live_siblings(self, i: int, *, crashed: bool) -> bool:
        return (
            self.alive[i]
            and self.restarted(i, crashed=crashed)
            and self.restart_events + 1 > self.max_restarts
            and sum(self.alive) > 1
        )

    def exit(self, i: int, *, crashed: bool) -> None:
        if not self.alive[i]:
            return
        if not self.restarted(i, crashed=crashed):
            self.alive[i] = False
            return
        self.restart_events += 1
        if self.restart_events > self.max_restarts:
            self.gave_up = True
            self.alive = [False] * len(self.alive)
            return
        live = [j for j, up in enumerate(self.alive) if up]
        if self.strategy is Strategy.ONE_FOR_ONE:
            targets = [i]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            targets = live
        else:
            targets = [j for j in live if j >= i]
        for j in targets:
            if j != i and self.policies[j] is Restart.TEMPORARY:
                self.alive[j] = False
            else:
                self.restarts[j] += 1

    def stop(self, i: int) -> None:
        self.alive[i] = False


async def settle(observe: Callable[[], object], expected: object) -> None:
    """Wait until the kernel has carried out the last operation (polling, never asserting
    how long it took), then compare what it shows with the model."""
    with anyio.move_on_after(2):
        while observe() != expected:
            await anyio.sleep(0.001)
    assert observe() == expected


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["crash", "exit", "stop", "ask"]), st.integers(0, 3)), max_size=12
)


async def run_against_model(
    strategy: Strategy,
    policies: list[Restart],
    max_restarts: int,
    operations: list[tuple[str, int]],
    *,
    stop_before_give_up_with_live_siblings: bool,
) -> None:
    model = SupervisorModel(strategy, policies, max_restarts)
    names = [f"c{i}" for i in range(len(policies))]

    async with Runtime(supervision=Supervision(backoff_initial=0)) as rt:
        sup = await rt.spawn(
            functools.partial(_Sup, dict(zip(names, policies, strict=True))),
            name="sup",
            restart=Restart.TEMPORARY,
            supervision=Supervision(
                strategy=strategy, max_restarts=max_restarts, within=1000, backoff_initial=0
            ),
        )
        refs = [rt.lookup(f"/sup/{name}") for name in names]

        def observe() -> tuple[object, ...]:
            stats = [ref.statistics() for ref in refs]
            return (
                sup.alive,
                [ref.alive for ref in refs],
                [s.restarts for s in stats],
                [s.state is ActorState.RUNNING for s in stats if s.state is not ActorState.STOPPED],
            )

        def expected() -> tuple[object, ...]:
            return (not model.gave_up, model.alive, model.restarts, [True] * sum(model.alive))

        for kind, index in operations:
            i = index % len(refs)
            ref, was_alive = refs[i], model.alive[i]
            if kind in ("crash", "exit"):
                crashed = kind == "crash"
                if stop_before_give_up_with_live_siblings and model.gives_up_with_live_siblings(
                    i, crashed=crashed
                ):
                    break
                if not was_alive:
                    with pytest.raises(ActorStopped):
                        await ref.ask(kind)
                elif crashed:
                    with pytest.raises(ActorCrashed):
                        await ref.ask("crash")
                else:
                    assert await ref.ask("exit") is None
                model.exit(i, crashed=crashed)
            elif kind == "stop":
                await ref.stop()
                model.stop(i)
            elif was_alive:
                assert await ref.ask(("ask", i)) == ("ask", i)
            else:
                with pytest.raises(ActorStopped):
                    await ref.ask(("ask", i))
            await settle(observe, expected())


class _Sup(Recorder):
    def __init__(self, policies: dict[str, Restart]) -> None:
        super().__init__()
        self.policies = policies

    async def on_start(self, ctx: Context) -> None:
        for name, policy in self.policies.items():
            await ctx.spawn(Recorder, name=name, restart=policy)


SUPERVISOR_CASES = {
    "strategy": st.sampled_from(Strategy),
    "policies": st.lists(st.sampled_from(Restart), min_size=1, max_size=4),
    "max_restarts": st.integers(0, 4),
    "operations": OPERATIONS,
}


@pytest.mark.anyio
@settings(max_examples=100, deadline=None)
@given(**SUPERVISOR_CASES)
async def test_supervisor_matches_model(
    strategy: Strategy,
    policies: list[Restart],
    max_restarts: int,
    operations: list[tuple[str, int]],
) -> None:
    await run_against_model(
        strategy,
        policies,
        max_restarts,
        operations,
        stop_before_give_up_with_live_siblings=True,
    )


@pytest.mark.anyio
@settings(max_examples=100, deadline=None)
@given(**SUPERVISOR_CASES)
async def test_supervisor_matches_model_including_every_give_up(
    strategy: Strategy,
    policies: list[Restart],
    max_restarts: int,
    operations: list[tuple[str, int]],
) -> None:
    await run_against_model(
        strategy,
        policies,
        max_restarts,
        operations,
        stop_before_give_up_with_live_siblings=False,
    )
