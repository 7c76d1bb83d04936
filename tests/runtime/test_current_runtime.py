"""current_runtime(): the runtime the calling code runs in, seen by actors and their tasks."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from limelight.runtime import Actor, Context, Runtime, current_runtime

pytestmark = pytest.mark.anyio


class WhereAmI(Actor):
    async def handle(self, message: Any, ctx: Context) -> Any:
        seen: list[Runtime | None] = []

        async def look() -> None:
            seen.append(current_runtime())

        async with anyio.create_task_group() as tg:
            tg.start_soon(look)
        return current_runtime(), seen[0]


async def test_none_outside_any_runtime() -> None:
    assert current_runtime() is None


async def test_the_block_its_actors_and_their_tasks_see_the_runtime() -> None:
    async with Runtime() as rt:
        assert current_runtime() is rt
        ref = await rt.spawn(WhereAmI(), name="where")
        assert await ref.ask("?") == (rt, rt)
    assert current_runtime() is None


async def test_nested_runtimes_innermost_first() -> None:
    async with Runtime() as outer:
        async with Runtime() as inner:
            assert current_runtime() is inner
            ref = await inner.spawn(WhereAmI(), name="where")
            assert await ref.ask("?") == (inner, inner)
        assert current_runtime() is outer


async def test_a_runtime_shutting_down_is_no_longer_current() -> None:
    seen: list[Runtime | None] = []

    class Stopper(Actor):
        async def on_stop(self, ctx: Context) -> None:
            seen.append(current_runtime())

    async with Runtime() as rt:
        await rt.spawn(Stopper(), name="stopper")
    assert seen == [None]


async def test_a_failed_entry_leaves_no_current_runtime() -> None:
    rt = Runtime()
    async with rt:
        pass
    with pytest.raises(Exception, match="only once"):
        async with rt:
            pass
    assert current_runtime() is None
