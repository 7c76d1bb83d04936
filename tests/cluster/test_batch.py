"""Batches sharded over the hosts of a cluster, on a real local Ray instance: items run in the
hosts' processes and their outcomes land once each in the caller's checkpoint; a host killed
with ``kill -9`` mid-batch costs nothing but the items it had in flight, which run again
elsewhere; a cluster whose hosts are all down for good stops the batch with HostDied, and a
rerun resumes it without running again what was done. Each host records its analytics events
in a store of its own. The caller runs on asyncio and trio, and each host's loop on the same
backend."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from limelight.batch import BatchReport, run_batch
from limelight.errors import ConfigError, HostDied
from limelight.schemas import Event, UserInputPayload

ray = pytest.importorskip("ray", reason="pip install 'limelight[ray]'")

from limelight.cluster import Cluster  # noqa: E402
from limelight.sinks._sqlite import read_events  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


# -- what the hosts run (imported there by module path: tests/ is on their PYTHONPATH) ------


class Doubled(msgspec.Struct, frozen=True, kw_only=True):
    n: int
    twice: int
    pid: int


async def double(n: int) -> Doubled:
    """Doubles ``n`` (13 fails), recording an analytics event in the host's store."""
    from limelight import analytics

    client = analytics.current()
    if client is not None:
        client.log_event(Event.create_user_input(f"item {n}", metadata={"pid": os.getpid()}))
    await anyio.sleep(0.01)
    if n == 13:
        raise ValueError("thirteen is unlucky")
    return Doubled(n=n, twice=2 * n, pid=os.getpid())


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """An item that logs each run of it (``n pid``) to ``log``. With ``hold``, its first run
    creates that file and waits there (until its host is killed); later runs do not wait."""

    n: int
    log: str
    hold: str | None = None


async def logged(job: Job) -> int:
    if _log_run(job):
        await anyio.sleep(120)
    await anyio.sleep(0.02)
    return job.n * 10


def _log_run(job: Job) -> bool:
    """Log this run; whether it is the held one."""
    fd = os.open(job.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{job.n} {os.getpid()}\n".encode())  # one O_APPEND write: whole lines
    finally:
        os.close(fd)
    if job.hold is None or os.path.exists(job.hold):
        return False
    Path(job.hold).touch()
    return True


# -- helpers -----------------------------------------------------------------------------


def cluster(anyio_backend: str, hosts: int = 2, **options: Any) -> Any:
    return Cluster.start(hosts, backend=anyio_backend, num_cpus=0.5, **options)


def job_key(job: Job) -> str:
    return str(job.n)


def checkpoint_keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    decoder = msgspec.json.Decoder(dict[str, Any])
    return [decoder.decode(line)["key"] for line in path.read_bytes().splitlines() if line]


def runs(log: Path) -> list[tuple[int, int]]:
    return [
        (int(n), int(pid))
        for n, pid in (line.split() for line in log.read_text().split("\n") if line)
    ]


async def wait_for_run(log: Path, n: int) -> int:
    """The pid of the host that started item ``n``, once it has."""
    with anyio.fail_after(30):
        while (pid := _pid_of(log, n)) is None:
            await anyio.sleep(0.02)
    return pid


def _pid_of(log: Path, n: int) -> int | None:
    return next((pid for item, pid in runs(log) if item == n), None) if log.exists() else None


# -- tests -------------------------------------------------------------------------------


async def test_items_run_on_the_hosts_and_land_once_each_in_the_checkpoint(
    ray_instance: None, anyio_backend: str, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "out.jsonl"
    events = tmp_path / "events"
    async with cluster(anyio_backend, analytics_dir=events) as c:
        pids = [await c.pid(i) for i in range(2)]
        report: BatchReport[Doubled] = await run_batch(
            range(30), double, concurrency=4, checkpoint=checkpoint, cluster=c
        )
        assert (report.completed, report.failed, report.resumed, report.requeued) == (29, 1, 0, 0)
        assert report.errors() == {"13": "thirteen is unlucky"}
        assert report.items[13].error_type == "ValueError"
        values = report.values()
        # A Struct comes back a Struct (its type named by the host), in input order.
        assert [v.twice if v is not None else None for v in values] == [
            None if n == 13 else 2 * n for n in range(30)
        ]
        # Sharded over both hosts; none ran here.
        ran_on = {v.pid for v in values if v is not None}
        assert ran_on == set(pids)
        assert os.getpid() not in ran_on
        assert Counter(checkpoint_keys(checkpoint)) == Counter(str(n) for n in range(30))

        # A rerun finds everything done but the failure, which it runs again.
        again: BatchReport[Any] = await run_batch(
            range(30), double, checkpoint=checkpoint, cluster=c
        )
        assert (again.resumed, again.failed, again.items[13].attempts) == (29, 1, 2)
        assert again.items[0].value == msgspec.structs.asdict(values[0])  # type: ignore[arg-type]

        lock = threading.Lock()

        async def holds_a_lock(n: int) -> int:
            with lock:
                return n

        with pytest.raises(ConfigError, match="cannot be pickled"):
            await run_batch(range(3), holds_a_lock, cluster=c)
    with pytest.raises(ConfigError, match="needs a running cluster"):
        await run_batch(range(3), double, cluster=c)
    with pytest.raises(ConfigError, match=r"must be a limelight\.cluster\.Cluster"):
        await run_batch(range(3), double, cluster=object())  # type: ignore[arg-type]

    # Each host recorded the events of the items it ran in its own store.
    by_host = [read_events(events / f"host-{i}.db") for i in range(2)]
    for i, recorded in enumerate(by_host):
        assert recorded
        assert {e.metadata["pid"] for e in recorded} == {pids[i]}
    texts = [
        e.payload.text
        for recorded in by_host
        for e in recorded
        if isinstance(e.payload, UserInputPayload)
    ]
    assert Counter(texts) == Counter([f"item {n}" for n in range(30)] + ["item 13"])


async def test_a_host_killed_mid_batch_costs_only_its_items_in_flight(
    ray_instance: None, anyio_backend: str, tmp_path: Path
) -> None:
    checkpoint, log, hold = tmp_path / "out.jsonl", tmp_path / "runs.log", tmp_path / "held"
    jobs = [Job(n=n, log=str(log), hold=str(hold) if n == 12 else None) for n in range(60)]
    async with cluster(anyio_backend) as c:
        host_of = {await c.pid(i): i for i in range(2)}
        reports: list[BatchReport[int]] = []

        async def batch() -> None:
            options: dict[str, Any] = {"key": job_key, "checkpoint": checkpoint, "cluster": c}
            reports.append(await run_batch(jobs, logged, concurrency=4, **options))

        async with anyio.create_task_group() as tg:
            tg.start_soon(batch)
            pid = await wait_for_run(log, 12)  # item 12 is in flight there, held
            done_before = set(checkpoint_keys(checkpoint))
            os.kill(pid, signal.SIGKILL)
        report = reports[0]
        assert (report.completed, report.failed, report.resumed) == (60, 0, 0)
        assert report.requeued >= 1
        assert report.items[12].attempts == 1  # its host's death was no failure of it
        # Every item exactly once in the checkpoint.
        assert Counter(checkpoint_keys(checkpoint)) == Counter(str(n) for n in range(60))
        ran = Counter(n for n, _ in runs(log))
        assert set(ran) == set(range(60))
        # Nothing recorded before the kill ran again; item 12 did, on a live host.
        assert all(ran[int(k)] == 1 for k in done_before)
        assert ran[12] == 2
        assert [p for n, p in runs(log) if n == 12][1] != pid
        # Only the killed host's items in flight ran twice.
        assert {n for n, count in ran.items() if count > 1} <= {n for n, p in runs(log) if p == pid}
        assert c.restarts(host_of[pid]) == 1


async def test_hosts_down_for_good_stop_the_batch_and_a_rerun_resumes_it(
    ray_instance: None, anyio_backend: str, tmp_path: Path
) -> None:
    checkpoint, log, hold = tmp_path / "out.jsonl", tmp_path / "runs.log", tmp_path / "held"
    jobs = [Job(n=n, log=str(log), hold=str(hold) if n == 8 else None) for n in range(30)]
    async with cluster(anyio_backend, hosts=1, max_restarts=0) as c:
        failures: list[HostDied] = []

        async def batch() -> None:
            with pytest.raises(HostDied) as info:
                await run_batch(
                    jobs, logged, key=job_key, concurrency=2, checkpoint=checkpoint, cluster=c
                )
            failures.append(info.value)

        async with anyio.create_task_group() as tg:
            tg.start_soon(batch)
            pid = await wait_for_run(log, 8)
            done_before = set(checkpoint_keys(checkpoint))
            os.kill(pid, signal.SIGKILL)
        assert "down for good" in str(failures[0])
    first = checkpoint_keys(checkpoint)
    assert len(first) == len(set(first))  # nothing twice
    assert done_before <= set(first)
    assert "8" not in first
    ran_first = Counter(n for n, _ in runs(log))

    async with cluster(anyio_backend, hosts=1) as c:
        report = await run_batch(
            jobs, logged, key=job_key, concurrency=2, checkpoint=checkpoint, cluster=c
        )
    assert (report.completed, report.failed, report.resumed) == (30, 0, len(first))
    assert Counter(checkpoint_keys(checkpoint)) == Counter(str(n) for n in range(30))
    ran = Counter(n for n, _ in runs(log))
    # The rerun ran exactly the items not in the checkpoint, once each.
    assert {n: ran[n] - ran_first[n] for n in range(30) if ran[n] > ran_first[n]} == {
        n: 1 for n in range(30) if str(n) not in first
    }
