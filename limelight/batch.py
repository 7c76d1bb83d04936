"""Batch processing with checkpoints: resume an interrupted batch where it stopped.

Run one async function over many items, a bounded number at a time, recording each outcome in a
checkpoint file as it completes, so a batch that was interrupted (a crash, Ctrl-C, a deadline)
resumes where it stopped::

    from limelight.batch import run_batch

    async def answer(prompt: str) -> AgentResult:
        return await Agent(model=pool, tools=[search]).run(prompt)

    report = await run_batch(prompts, answer, concurrency=32, checkpoint="answers.jsonl")
    print(report.completed, report.failed, report.resumed)

An item is identified by its key (its position in ``items`` unless ``key=`` says
otherwise). The checkpoint is a JSON-lines file, one line per finished item, flushed and
fsync'd as it is written: on a rerun, items already done are not run again (their stored
values come back in the report), and failed ones are retried unless ``retry_failed=False``.
A line cut short by a crash is ignored (and counted). A failure of ``fn`` is an outcome of
its item, recorded with its error; it never stops the batch.

With ``cluster=`` (a running :class:`limelight.cluster.Cluster`), the items are sharded over
the cluster's Ray hosts: ``fn`` is pickled (cloudpickle) and runs in the hosts' processes, and
the checkpoint is still written by this process alone. An item in flight on a host that died
runs again on a live one; the checkpoint ends with every item exactly once::

    async with Cluster.start(4) as cluster:
        report = await run_batch(prompts, answer, checkpoint="answers.jsonl", cluster=cluster)

``fn`` makes its model calls through an agent, a :class:`~limelight.actors.ProviderPool`, the
role router or the sync client, so each takes the pipeline every model call takes (retries,
rate limiting, analytics, usage); a batch adds only its concurrency bound and checkpoints.
"""

from __future__ import annotations

from ._batch import BatchItem as BatchItem
from ._batch import BatchReport as BatchReport
from ._batch import run_batch as run_batch
from ._batch import run_batch_sync as run_batch_sync

__all__ = ["BatchItem", "BatchReport", "run_batch", "run_batch_sync"]
