"""Batches with checkpoints: outcomes in input order, failures recorded not raised, the
concurrency bound held, and an interrupted batch resuming from its checkpoint without
running anything twice."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from limelight.agents import Agent, AgentResult
from limelight.batch import BatchItem, run_batch, run_batch_sync
from limelight.errors import ConfigError
from limelight.testing import Scripted

pytestmark = pytest.mark.anyio


async def test_outcomes_come_in_input_order_and_failures_are_recorded() -> None:
    async def square(n: int) -> int:
        await anyio.sleep(0.01 * (5 - n))  # later items finish first
        if n == 3:
            raise ValueError("three is not allowed")
        return n * n

    report = await run_batch(range(5), square, concurrency=5)
    assert report.values() == [0, 1, 4, None, 16]
    assert (report.completed, report.failed, report.resumed) == (4, 1, 0)
    assert report.errors() == {"3": "three is not allowed"}
    assert report.items[3].error_type == "ValueError"


async def test_the_concurrency_bound_holds() -> None:
    running = peak = 0

    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return n

    report = await run_batch(range(20), work, concurrency=3)
    assert report.completed == 20
    assert peak == 3


async def test_an_interrupted_batch_resumes_without_repeating_work(tmp_path: Path) -> None:
    checkpoint = tmp_path / "out" / "batch.jsonl"
    runs: list[str] = []
    stop_after = 4

    async def work(item: str) -> dict[str, str]:
        runs.append(item)
        if len(runs) > stop_after:
            await anyio.sleep_forever()  # "crashes" here: the batch is cancelled
        return {"upper": item.upper()}

    items = [f"item-{i}" for i in range(10)]
    with anyio.move_on_after(1):
        await run_batch(items, work, concurrency=1, checkpoint=checkpoint, key=lambda s: s)
    assert runs == items[:5]  # four done, the fifth interrupted
    stop_after = 100
    seen: list[BatchItem[dict[str, str]]] = []
    report = await run_batch(
        items, work, concurrency=4, checkpoint=checkpoint, key=lambda s: s, on_item=seen.append
    )
    assert sorted(runs) == sorted([*items, items[4]])  # only the interrupted one ran twice
    assert report.completed == 10
    assert report.resumed == 4
    assert report.values() == [{"upper": i.upper()} for i in items]
    assert len(seen) == 10
    # A third run finds everything done.
    again = await run_batch(items, work, checkpoint=checkpoint, key=lambda s: s)
    assert again.resumed == 10
    assert len(runs) == 11


async def test_failed_items_are_retried_on_the_next_run(tmp_path: Path) -> None:
    checkpoint = tmp_path / "batch.jsonl"
    flaky = {"b"}

    async def work(item: str) -> str:
        if item in flaky:
            raise RuntimeError(f"{item} failed")
        return item

    first = await run_batch(["a", "b"], work, checkpoint=checkpoint, key=str)
    assert first.failed == 1
    kept = await run_batch(["a", "b"], work, checkpoint=checkpoint, key=str, retry_failed=False)
    assert kept.failed == 1
    assert kept.items[1].resumed
    flaky.clear()
    second = await run_batch(["a", "b"], work, checkpoint=checkpoint, key=str)
    assert second.completed == 2
    assert second.items[1].attempts == 2
    assert not second.items[1].resumed


async def test_a_line_cut_short_by_a_crash_is_skipped_and_counted(tmp_path: Path) -> None:
    checkpoint = tmp_path / "batch.jsonl"

    async def work(n: int) -> int:
        return n + 1

    await run_batch(range(3), work, checkpoint=checkpoint)
    with checkpoint.open("ab") as f:
        f.write(b'{"key": "3", "ok": tr')  # the crash
    report = await run_batch(range(4), work, checkpoint=checkpoint)
    assert report.corrupt_lines == 1
    assert report.resumed == 3
    assert report.values() == [1, 2, 3, 4]


async def test_agent_results_come_back_typed_from_the_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "agents.jsonl"

    async def answer(prompt: str) -> AgentResult:
        return await Agent(model=Scripted([f"answer to {prompt}"])).run(prompt)

    prompts = ["one", "two"]
    await run_batch(prompts, answer, checkpoint=checkpoint, result_type=AgentResult)
    report = await run_batch(prompts, answer, checkpoint=checkpoint, result_type=AgentResult)
    assert report.resumed == 2
    results = report.values()
    assert all(isinstance(r, AgentResult) for r in results)
    assert [r.content for r in results if r is not None] == ["answer to one", "answer to two"]


def test_bad_batches_are_config_errors() -> None:
    async def work(n: int) -> int:
        return n

    with pytest.raises(ConfigError, match="concurrency"):
        run_batch_sync([1], work, concurrency=0)
    with pytest.raises(ConfigError, match="two items have the key 'x'"):
        run_batch_sync([1, 2], work, key=lambda n: "x")


def test_run_batch_sync_runs_from_plain_code() -> None:
    async def double(n: int) -> int:
        return 2 * n

    assert run_batch_sync([1, 2, 3], double).values() == [2, 4, 6]


async def test_a_value_the_checkpoint_cannot_hold_fails_its_item_only(tmp_path: Path) -> None:
    async def work(n: int) -> object:
        return object() if n == 1 else n

    report = await run_batch(range(3), work, checkpoint=tmp_path / "b.jsonl")
    assert report.values() == [0, None, 2]
    assert report.items[1].error_type == "CheckpointError"
    assert "msgspec-encodable" in (report.items[1].error or "")
