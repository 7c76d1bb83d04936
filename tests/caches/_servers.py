"""Real Redis and PostgreSQL servers for the cache tests (and ``bench/cache.py``), each started
in a temporary folder on a free loopback port and stopped cleanly.

``redis-server`` must be on PATH (``.ci/run`` installs it: ``apt-get install redis-server``).
PostgreSQL's ``initdb`` and ``postgres`` are taken from PATH or from
``/usr/lib/postgresql/<version>/bin`` (Debian's ``apt-get install postgresql``). PostgreSQL
refuses to run as root: as root, both run as the ``postgres`` user (or ``nobody``), in a
folder given to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "RedisServer", "free_port", "postgres_server", "redis_server"]


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_of)
    if versions:
        return versions[-1]
    raise RuntimeError(f"{name} is not installed: {hint}")


def _version_of(path: str) -> float:
    try:
        return float(Path(path).parent.parent.name)
    except ValueError:
        return 0.0


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


@dataclass
class RedisServer:
    """A ``redis-server`` process: ``url`` reaches it; :meth:`kill` ends it with SIGKILL."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]
    password: str | None = None
    unix_socket: Path | None = None
    certificate: Path | None = None  # TLS only, with this self-signed certificate

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.certificate else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed: apt-get install openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _ping(port: int, certificate: Path | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as raw:
            if certificate is None:
                return _pong(raw)
            context = ssl.create_default_context(cafile=str(certificate))
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                return _pong(sock)
    except OSError:
        return False


def _pong(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))


def _start_redis(
    folder: Path, port: int, password: str | None, unix_socket: bool, tls: bool
) -> RedisServer:
    binary = _binary("redis-server", "apt-get install redis-server (.ci/run does)")
    folder.mkdir(parents=True, exist_ok=True)
    certificate = None
    if tls:
        certificate, key = self_signed_certificate(folder)
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certificate),
                  "--tls-key-file", str(key), "--tls-auth-clients", "no"]  # fmt: skip
    else:
        listen = ["--port", str(port)]
    command = [
        binary,
        *listen,
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(folder),
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip
    if password:
        command += ["--requirepass", password]
    sock = folder / "redis.sock" if unix_socket else None
    if sock is not None:
        command += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
    log = folder / f"redis-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = RedisServer(port, folder, process, password, sock, certificate)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited ({process.returncode}): {_tail(log)}")
        if _ping(port, certificate):
            return server
        time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"redis-server did not answer on port {port}: {_tail(log)}")


@contextlib.contextmanager
def redis_server(
    folder: Path,
    *,
    port: int | None = None,
    password: str | None = None,
    unix_socket: bool = False,
    tls: bool = False,
) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` (no persistence) in ``folder``, stopped on exit; with
    ``tls``, it listens with TLS only, on a self-signed certificate."""
    for attempt in range(3):
        try:
            server = _start_redis(folder, port or free_port(), password, unix_socket, tls)
            break
        except RuntimeError:
            if attempt == 2 or port is not None:
                raise  # a fixed port that stays taken, or a server that will not start
    try:
        yield server
    finally:
        server.stop()


@dataclass
class PostgresServer:
    """A PostgreSQL server: ``dsn`` reaches its ``postgres`` database as ``postgres``."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _run_as() -> str | None:
    """The user PostgreSQL runs as: ourselves, or (as root, which it refuses) another."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("PostgreSQL will not run as root, and no 'postgres' user exists")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster (``initdb``, trust auth, no fsync) on a free port, stopped
    (fast shutdown) and deleted on exit."""
    hint = "apt-get install postgresql (binaries in /usr/lib/postgresql/<version>/bin)"
    initdb = _binary("initdb", hint)
    postgres = _binary("postgres", hint)
    user = _run_as()
    # Outside pytest's folders: those are private to us, and the server may run as another.
    folder = Path(tempfile.mkdtemp(prefix="limelight-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    log = folder / "postgres.log"
    try:
        subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            user=user,
            cwd=folder,
        )
        port = free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [
                    postgres, "-D", str(data), "-k", str(folder), "-p", str(port),
                    "-h", "127.0.0.1", "-F", "-c", "log_min_messages=warning",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
                cwd=folder,
            )  # fmt: skip
        server = PostgresServer(port, folder, process)
        try:
            _wait_for_postgres(server, log)
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_postgres(server: PostgresServer, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited ({server.process.returncode}): {_tail(log)}")
        try:
            with psycopg.connect(server.dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError(f"postgres did not accept connections: {_tail(log)}")
