"""Runtime hosts on a real local Ray instance: remote refs (tell, ask, stream) across
processes, the caller's deadline travelling with an ask, a host killed with ``kill -9``
(asks in flight fail at once with HostDied, the host restarts with its actors per their
restart policy, restart intensity bounds it), and a cluster joining a running Ray instance by
its address. The caller runs on asyncio and trio, and each host's loop on the same backend."""

from __future__ import annotations

import os
import signal

import anyio
import pytest

from limelight.errors import ActorNotFound, AskTimeout, ConfigError, HostDied
from limelight.runtime import Restart

from ._ray_actors import Add, Counter, CountTo, Get, InThread, Place, Sleep, Where

ray = pytest.importorskip("ray", reason="pip install 'limelight[ray]'")

from limelight.cluster import Cluster  # noqa: E402

pytestmark = [pytest.mark.anyio]


def cluster(anyio_backend: str, hosts: int = 2, **options: object) -> object:
    return Cluster.start(hosts, backend=anyio_backend, num_cpus=0.5, **options)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_remote_refs_tell_ask_and_stream_across_hosts(
    ray_instance: None, anyio_backend: str
) -> None:
    async with cluster(anyio_backend) as c:  # type: ignore[attr-defined]
        a = await c.spawn(Counter, name="a", host=0)
        b = await c.spawn(Counter, name="b", host=1)
        await a.tell(Add(amount=2))
        await b.tell(Add(amount=5))
        await a.tell(Add(amount=3))
        assert await a.ask(Get(), timeout=10) == 5
        assert await b.ask(Get(), timeout=10) == 5
        where_a, where_b = await a.ask(Where(), timeout=10), await b.ask(Where(), timeout=10)
        assert isinstance(where_a, Place)  # a Struct reply decodes to its type
        assert len({where_a.pid, where_b.pid, os.getpid()}) == 3  # three processes
        assert where_a.backend == anyio_backend
        assert where_a.path == "/a"
        assert [i async for i in a.stream(CountTo(n=4))] == [0, 1, 2, 3]
        # The host's loop hands blocking work to worker threads (sync tools do).
        assert await a.ask(InThread(), timeout=10) is True


def test_a_host_takes_at_least_two_calls_at_once() -> None:
    with pytest.raises(ConfigError, match="calls_per_host must be >= 2"):
        Cluster(1, calls_per_host=1)


def test_a_request_and_its_reply_cross_as_one_frame_each() -> None:
    from limelight.cluster._hosts import _open_reply, _open_request, _reply, _request

    frame = _request("/a", 1.5, Add(amount=3))
    assert isinstance(frame, bytes)
    assert _open_request(frame) == ("/a", 1.5, Add(amount=3))
    assert _open_request(_request("/b", None, [1, "x"])) == ("/b", None, [1, "x"])
    place = Place(pid=1, backend="trio", path="/a")
    assert _open_reply(_reply(place)) == place
    assert _open_reply(_reply(None)) is None


@pytest.mark.slow
async def test_the_callers_deadline_travels_with_the_ask(
    ray_instance: None, anyio_backend: str
) -> None:
    # One call thread besides the watcher's: an ask that timed out must have let go of it
    # for the next to run at all.
    async with cluster(anyio_backend, hosts=1, calls_per_host=2) as c:  # type: ignore[attr-defined]
        ref = await c.spawn(Counter, name="slow")
        start = anyio.current_time()
        with pytest.raises(AskTimeout):
            await ref.ask(Sleep(seconds=30), timeout=0.5)
        assert anyio.current_time() - start < 5
        # The deadline of an enclosing scope travels too, and the host gave up the handler
        # with it: the actor answers the next ask at once instead of sleeping on.
        with anyio.move_on_after(0.5):
            await ref.ask(Sleep(seconds=30))
        assert await ref.ask(Get(), timeout=5) == 0


@pytest.mark.slow
async def test_a_killed_host_fails_asks_in_flight_and_restarts_with_its_actors(
    ray_instance: None, anyio_backend: str
) -> None:
    async with cluster(anyio_backend) as c:  # type: ignore[attr-defined]
        permanent = await c.spawn(Counter, name="kept", host=0)
        temporary = await c.spawn(Counter, name="gone", host=0, restart=Restart.TEMPORARY)
        other = await c.spawn(Counter, name="other", host=1)
        await permanent.tell(Add(amount=7))
        await other.tell(Add(amount=1))
        pid = await c.pid(0)
        failed_after: list[float] = []

        async def in_flight() -> None:
            start = anyio.current_time()
            with pytest.raises(HostDied) as info:
                await permanent.ask(Sleep(seconds=60), timeout=60)
            failed_after.append(anyio.current_time() - start)
            assert info.value.host == 0

        async with anyio.create_task_group() as tg:
            tg.start_soon(in_flight)
            await anyio.sleep(1.0)
            killed_at = anyio.current_time()
            os.kill(pid, signal.SIGKILL)
        # Failed promptly, not at its 60 s deadline.
        assert failed_after
        assert anyio.current_time() - killed_at < 5
        # The host comes back with its permanent actor (fresh state), not the temporary one.
        with anyio.fail_after(60):
            assert await permanent.ask(Get(), timeout=60) == 0
        assert await c.pid(0) != pid
        assert c.restarts(0) == 1
        with pytest.raises(ActorNotFound):
            await temporary.ask(Get(), timeout=10)
        assert await other.ask(Get(), timeout=10) == 1  # the other host never noticed


@pytest.mark.slow
async def test_restart_intensity_gives_a_host_up(ray_instance: None, anyio_backend: str) -> None:
    async with cluster(anyio_backend, hosts=1, max_restarts=1) as c:  # type: ignore[attr-defined]
        ref = await c.spawn(Counter, name="c")
        for expected in ("restarted", "gone"):
            os.kill(await c.pid(0), signal.SIGKILL)
            if expected == "restarted":
                with anyio.fail_after(60):
                    while True:
                        try:  # an ask sent before the death was noticed fails with it
                            assert await ref.ask(Get(), timeout=60) == 0
                            break
                        except HostDied:
                            await anyio.sleep(0.1)
            else:
                # The first ask may see the death itself; once the cluster has given the
                # host up, every ask says so.
                errors: list[str] = []
                with anyio.fail_after(30):
                    while not any("down for good" in e for e in errors):
                        try:
                            await ref.ask(Get(), timeout=5)
                        except HostDied as exc:
                            errors.append(str(exc))
                        await anyio.sleep(0.1)
                assert c.restarts(0) == 1


_JOIN = """
import sys, anyio, ray
from limelight.cluster import Cluster
from tests.cluster._ray_actors import Add, Counter, Get, Where

async def main() -> None:
    env = {"runtime_env": {"env_vars": {"PYTHONPATH": sys.argv[3]}}}
    async with Cluster.start(
        1, address=sys.argv[1], backend=sys.argv[2], num_cpus=0.5, ray_options=env
    ) as c:
        ref = await c.spawn(Counter, name="joined")
        await ref.tell(Add(amount=2))
        place = await ref.ask(Where(), timeout=30)
        joined = ray.get_runtime_context().gcs_address
        print(joined, await ref.ask(Get(), timeout=30), place.backend, place.pid)

anyio.run(main, backend=sys.argv[2])
"""


@pytest.mark.slow
async def test_a_cluster_joins_a_running_ray_by_address(
    ray_instance: None, anyio_backend: str
) -> None:
    """Another process (a driver of its own, Ray not initialised there) starts its hosts on
    the Ray instance this session runs, by its address, and leaves that instance running."""
    import sys

    from .conftest import ROOT

    address = ray.get_runtime_context().gcs_address
    done = await anyio.run_process(
        [sys.executable, "-c", _JOIN, address, anyio_backend, str(ROOT)],
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    joined, count, backend, pid = done.stdout.decode().split()[-4:]
    assert joined == address  # not a Ray instance of its own
    assert (count, backend) == ("2", anyio_backend)
    assert int(pid) != os.getpid()
    # The instance it joined is still up: this process's own hosts start on it.
    async with cluster(anyio_backend, hosts=1) as c:  # type: ignore[attr-defined]
        ref = await c.spawn(Counter, name="after")
        assert await ref.ask(Get(), timeout=30) == 0
