"""The caches package: what it and ``limelight.cache`` export, what importing them costs (no
server client until a server cache is used), the extras a missing package is named by, the
protocols each cache follows, and the Redis reply parser (fed replies in arbitrary pieces)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import limelight.cache
import limelight.caches
from limelight.cache import RequestCache, ResponseCache
from limelight.caches._resp import _parse, pack

from ._helpers import bag_of_words

SERVER_CLIENTS = {"redis", "psycopg", "qdrant_client", "structlog", "grpc"}


def loaded_by(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_importing_the_caches_loads_no_server_client() -> None:
    loaded = loaded_by("import limelight, limelight.cache, limelight.caches")
    assert not loaded & SERVER_CLIENTS, sorted(loaded & SERVER_CLIENTS)
    # The Redis cache needs no third-party client at all.
    assert not loaded_by("from limelight.caches import RedisCache") & {"redis", "psycopg"}


def test_both_modules_export_the_same_caches() -> None:
    for name in limelight.cache.__all__:
        if name != "CachingProvider":
            assert getattr(limelight.cache, name) is getattr(limelight.caches, name), name


@pytest.mark.parametrize(
    ("module", "name", "extra"),
    [
        ("psycopg", "PostgresRedisCache", "postgres"),
        ("qdrant_client", "QdrantSemanticCache", "qdrant"),
    ],
)
@pytest.mark.parametrize("package", ["limelight.caches", "limelight.cache"])
def test_a_missing_client_names_its_extra(module: str, name: str, extra: str, package: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from limelight.errors import MissingExtra\n"
        "try:\n"
        f"    from {package} import {name}\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.startswith(f"{extra} |"), out
    assert f"pip install 'limelight[{extra}]'" in out


def test_every_cache_follows_the_protocols() -> None:
    from limelight.caches import (
        MemoryCache,
        PostgresRedisCache,
        QdrantSemanticCache,
        RedisCache,
    )

    exact = [
        MemoryCache(),
        RedisCache("redis://127.0.0.1:1"),
        PostgresRedisCache("postgresql://u@127.0.0.1:1/db", "redis://127.0.0.1:1"),
    ]
    for cache in exact:
        assert isinstance(cache, ResponseCache)
        assert not isinstance(cache, RequestCache)
    semantic = QdrantSemanticCache(location=":memory:", embedder=bag_of_words)
    assert isinstance(semantic, ResponseCache)
    assert isinstance(semantic, RequestCache)
    semantic._client.close()


# -- the Redis reply parser -------------------------------------------------------------

replies = st.recursive(
    st.none() | st.binary(max_size=40) | st.integers(-(2**40), 2**40),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


def encode(value: object) -> bytes:
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    assert isinstance(value, list)
    return b"*%d\r\n" % len(value) + b"".join(encode(v) for v in value)


@given(value=replies, cut=st.integers(min_value=0), tail=st.binary(max_size=8))
def test_replies_parse_whole_and_wait_for_the_rest(value: object, cut: int, tail: bytes) -> None:
    wire = encode(value)
    cut %= len(wire)
    assert _parse(bytearray(wire[:cut]), 0) is None  # incomplete: wait for more bytes
    parsed = _parse(bytearray(wire + tail), 0)  # what follows is the next reply's
    assert parsed == (value, len(wire))


def test_simple_strings_errors_and_commands() -> None:
    assert _parse(bytearray(b"+OK\r\n"), 0) == ("OK", 5)
    error = _parse(bytearray(b"-WRONGTYPE Operation\r\n"), 0)
    assert error is not None
    assert type(error[0]).__name__ == "_Error"
    assert pack(b"GET", b"k\r\n") == b"*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n"
