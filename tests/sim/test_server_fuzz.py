"""The ``limelight sim`` server against random requests, over real HTTP: random JSON bodies
(random structure, tool and ``response_format`` schemas with random keyword values), random
bytes, random headers and content types. Whatever comes, it answers below 500 and keeps
answering ``/health``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from limelight.sim import (
    MAX_EMBEDDING_DIMENSIONS,
    MAX_OUTPUT_TOKENS,
    MAX_SCHEMA_ARRAY_ITEMS,
    MAX_SCHEMA_STRING_LENGTH,
    SimulatedConfig,
    serve_in_thread,
)

# Every tool offered is called, so that random schemas reach the argument generator.
CONFIG = SimulatedConfig(
    ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=8, tool_call_probability=1.0
)
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ENDPOINTS = ("chat/completions", "completions", "embeddings")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with (
        serve_in_thread(CONFIG) as base,
        httpx.Client(base_url=base.removesuffix("/v1"), timeout=60) as http,
    ):
        yield http


# -- random values ---------------------------------------------------------------------

# Sizes around every cap, and far beyond: each must be refused or served, never a 5xx.
EDGE_INTEGERS = st.sampled_from(
    [
        -(2**63), -3, -1, 0, 1, 2, 7, 64, 1000, MAX_SCHEMA_ARRAY_ITEMS, MAX_SCHEMA_ARRAY_ITEMS + 1,
        MAX_SCHEMA_STRING_LENGTH, MAX_SCHEMA_STRING_LENGTH + 1, MAX_EMBEDDING_DIMENSIONS,
        MAX_EMBEDDING_DIMENSIONS + 1, MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS + 1, 100_000_000,
        1_000_000_000, 2**63, 2**64, 10**300, 10**400,
    ]
)  # fmt: skip
INTEGERS = st.integers() | EDGE_INTEGERS
NUMBERS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e308, -1e308, 0.5])
SCALARS = st.none() | st.booleans() | INTEGERS | NUMBERS | st.text(max_size=12)
_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def json_values(draw: st.DrawFn) -> Any:
    """Any JSON value. A composite, because Hypothesis spells out a strategy's repr now and
    then, and spelled out, the strategies built on this one grow too long (a warning)."""
    return draw(_JSON)


JSON = json_values()


def mostly(valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any] = JSON) -> Any:
    """``valid`` nine times in ten, else ``wrong``: most requests get as far as generating
    their answer, and every check still meets wrong values."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda i: wrong if i == 0 else valid)


TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
NAMES = st.sampled_from(["a", "b", "city", "x"]) | st.text(max_size=6)


def often_wrong(valid: st.SearchStrategy[Any]) -> Any:
    """``valid`` three times in four, else any JSON value."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda i: JSON if i == 0 else valid)


COUNTS = often_wrong(st.integers(min_value=-1, max_value=12) | EDGE_INTEGERS)
BOUNDS = often_wrong(INTEGERS | NUMBERS)
# The keywords each type reads, with values of the right type three times in four.
KEYWORDS: dict[str, dict[str, Any]] = {
    "string": {"minLength": COUNTS, "maxLength": COUNTS, "pattern": often_wrong(st.text())},
    "integer": {
        "minimum": BOUNDS,
        "maximum": BOUNDS,
        "exclusiveMinimum": often_wrong(INTEGERS | NUMBERS | st.booleans()),
        "exclusiveMaximum": often_wrong(INTEGERS | NUMBERS | st.booleans()),
        "multipleOf": BOUNDS,
    },
    "array": {"minItems": COUNTS, "maxItems": COUNTS},
    "object": {"required": often_wrong(st.lists(NAMES, max_size=3))},
}
KEYWORDS["number"] = KEYWORDS["integer"]
ANY_KEYWORDS = {
    "enum": often_wrong(st.lists(JSON, max_size=4)),
    "const": JSON,
    "description": often_wrong(st.text(max_size=12)),
    "format": often_wrong(st.sampled_from(["date-time", "email"])),
    "$ref": often_wrong(st.just("#/$defs/x")),
}


@st.composite
def schemas(draw: st.DrawFn, depth: int = 0) -> Any:
    """A JSON schema of the keywords the simulator reads, for a type drawn first, their
    values often of the wrong type or beyond the caps; now and then any JSON value."""
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return draw(JSON)
    kind = draw(st.sampled_from(TYPES) | st.lists(st.sampled_from(TYPES), max_size=3) | JSON)
    schema: dict[str, Any] = {"type": kind}
    first: Any = kind[0] if isinstance(kind, list) and kind else kind
    if not isinstance(first, str):
        first = ""
    own = dict(KEYWORDS.get(first, {}))
    others: dict[str, Any] = {}
    if depth < 3:
        inner = schemas(depth + 1)
        nested = {
            "items": often_wrong(inner | st.lists(inner, max_size=2)),
            "properties": often_wrong(st.dictionaries(NAMES, inner, min_size=1, max_size=3)),
            "additionalProperties": often_wrong(st.booleans() | inner),
            "anyOf": often_wrong(st.lists(inner, min_size=1, max_size=3)),
            "$defs": often_wrong(st.dictionaries(NAMES, inner, max_size=2)),
        }
        mine = {"array": ("items",), "object": ("properties", "additionalProperties")}
        for key, values in nested.items():
            (own if key in mine.get(first, ()) else others)[key] = values
    # A type's own keywords two times in three, the others one time in eight.
    for key, values in own.items():
        if draw(st.integers(min_value=0, max_value=2)) > 0:
            schema[key] = draw(values)
    for key, values in (others | ANY_KEYWORDS).items():
        if draw(st.integers(min_value=0, max_value=7)) == 0:
            schema[key] = draw(values)
    return schema


SCHEMAS = schemas()


def paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place inside ``value``: the keys and indexes leading there."""
    yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from paths(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from paths(sub, (*path, i))


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A ``valid`` body with up to two random changes: a value replaced by any JSON value,
    a field removed, a field added. A third of the bodies stay valid."""
    body = draw(valid)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        places = [path for path in paths(body) if path]
        if not places:  # every field removed
            break
        *where, last = draw(st.sampled_from(places))
        parent: Any = body
        for step in where:
            parent = parent[step]
        if not isinstance(parent, dict | list):
            continue
        change = draw(st.sampled_from(["replace", "remove", "add"]))
        if change == "remove" and isinstance(parent, dict):
            parent.pop(last, None)
        elif change == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON)
        elif isinstance(parent, dict) or (isinstance(last, int) and last < len(parent)):
            parent[last] = draw(JSON)
    return body


def bodies(valid: st.SearchStrategy[dict[str, Any]]) -> Any:
    """Mostly ``valid`` bodies with random changes; the rest any JSON value at all."""
    return mostly(mutated(valid))


CONTENT_PART = st.fixed_dictionaries(
    {"type": st.just("text"), "text": st.text(max_size=10)}
) | st.fixed_dictionaries(
    {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": st.text(max_size=8)})}
)
TOOL_CALL = st.fixed_dictionaries(
    {
        "id": st.text(max_size=5),
        "function": st.fixed_dictionaries(
            {"name": st.text(max_size=5), "arguments": st.text(max_size=10)}
        ),
    }
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer"])},
    optional={
        "content": st.text(max_size=20) | st.lists(CONTENT_PART, max_size=3),
        "name": st.text(max_size=5),
        "tool_calls": st.lists(TOOL_CALL, max_size=2),
        "tool_call_id": st.text(max_size=5),
    },
)
# Tool and response_format schemas: the keywords the simulator reads, their values often of
# the wrong type or far beyond the caps (SCHEMAS).
TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["f", "g"])},
            optional={
                "parameters": SCHEMAS,
                "description": st.text(max_size=8),
                "strict": st.booleans(),
            },
        ),
    }
)
RESPONSE_FORMAT = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "json_object", "json_schema"])},
    optional={
        "json_schema": st.fixed_dictionaries(
            {"name": NAMES}, optional={"schema": SCHEMAS, "strict": st.booleans()}
        )
    },
)
COMMON = {
    "model": st.text(max_size=8),
    "max_tokens": mostly(st.integers(min_value=1, max_value=64), wrong=INTEGERS),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "temperature": mostly(st.floats(min_value=0, max_value=2), wrong=NUMBERS),
    "seed": INTEGERS,
    "stop": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=3),
    "n": mostly(st.just(1), wrong=INTEGERS),
}
BODIES = {
    "chat/completions": bodies(
        st.fixed_dictionaries(
            {
                "messages": st.lists(MESSAGE, min_size=1, max_size=3),
                # Tools in most requests, called unless tool_choice says otherwise.
                "tools": st.lists(TOOL, max_size=3),
            },
            optional=COMMON
            | {
                "max_completion_tokens": mostly(
                    st.integers(min_value=1, max_value=64), wrong=INTEGERS
                ),
                "tool_choice": st.sampled_from(["auto", "none", "required"])
                | st.fixed_dictionaries(
                    {
                        "type": st.just("function"),
                        "function": st.fixed_dictionaries({"name": NAMES}),
                    }
                ),
                "response_format": RESPONSE_FORMAT,
                "top_p": mostly(st.floats(min_value=0, max_value=1), wrong=NUMBERS),
            },
        )
    ),
    "completions": bodies(
        st.fixed_dictionaries(
            {"prompt": st.text(max_size=20) | st.lists(st.text(max_size=8), max_size=3)},
            optional=COMMON,
        )
    ),
    "embeddings": bodies(
        st.fixed_dictionaries(
            {
                "input": st.text(max_size=20)
                | st.lists(st.text(max_size=8), max_size=4)
                | st.lists(INTEGERS, max_size=4)
                | st.lists(st.lists(INTEGERS, max_size=3), max_size=3)
            },
            optional={
                "model": st.text(max_size=8),
                "dimensions": mostly(st.integers(min_value=1, max_value=64), wrong=INTEGERS),
                "encoding_format": st.sampled_from(["float", "base64"]),
            },
        )
    ),
}

# Headers that frame the request itself: random values there test httpx, not the server.
FRAMING = {"content-length", "transfer-encoding", "host", "connection", "upgrade", "te"}
FRAMING |= {"trailer", "keep-alive"}
HEADER_NAMES = st.sampled_from(
    [
        "content-type", "accept", "accept-encoding", "authorization", "user-agent",
        "x-request-id", "openai-organization", "x-stainless-retry-count",
    ]
)  # fmt: skip
ANY_HEADER_NAMES = (
    HEADER_NAMES
    | st.sampled_from(["content-encoding", "expect"])
    | st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,15}\Z").filter(lambda n: n.lower() not in FRAMING)
)
HEADER_VALUES = st.sampled_from(
    [
        "application/json", "application/json; charset=latin-1", "text/plain", "text/event-stream",
        "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "gzip", "br",
        "deflate", "zstd", "identity", "100-continue", "",
    ]
) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
    str.strip  # h11 refuses a value that starts or ends with a space, before it is sent
)  # fmt: skip
# Most requests carry headers that leave the body to be read (any content type, any value);
# the rest any headers at all (a Content-Encoding the body is not in, an Expect...).
HEADERS = mostly(
    st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3),
    wrong=st.dictionaries(ANY_HEADER_NAMES, HEADER_VALUES, max_size=4),
)


def encode(value: Any) -> bytes:
    # json, not msgspec: integers beyond 64 bits must reach the server as they are.
    return json.dumps(value).encode()


def check(client: httpx.Client, response: httpx.Response) -> None:
    """No 5xx; a 4xx of the simulator has OpenAI's error shape; health still answers."""
    # What the examples reached, for --hypothesis-show-statistics.
    event(f"status {response.status_code}")
    if response.status_code == 200 and '"tool_calls"' in response.text:
        event("tool call generated")
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.headers["content-type"] == "application/json":
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
        assert error["message"]
    assert client.get("/health").json() == {"status": "ok"}


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.timeout(600)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@FUZZ
@given(data=st.data(), headers=HEADERS)
def test_random_json_bodies_never_get_a_5xx(
    client: httpx.Client, endpoint: str, data: st.DataObject, headers: dict[str, str]
) -> None:
    body = data.draw(BODIES[endpoint], label="body")
    response = client.post(f"/v1/{endpoint}", content=encode(body), headers=headers)
    check(client, response)


NESTED = st.integers(min_value=1, max_value=200_000).map(
    lambda depth: b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"
)
# Valid JSON cut short, JSON with its brackets unbalanced, any bytes at all.
BROKEN = (
    st.builds(lambda body, cut: encode(body)[:cut], JSON, st.integers(min_value=0, max_value=40))
    | st.builds(lambda body: encode(body).replace(b"]", b"", 1), JSON)
    | st.binary(max_size=200)
    | NESTED
)


@pytest.mark.timeout(600)
@settings(parent=FUZZ, max_examples=300)
@given(endpoint=st.sampled_from(ENDPOINTS), content=BROKEN, headers=HEADERS)
def test_invalid_json_bytes_never_get_a_5xx(
    client: httpx.Client, endpoint: str, content: bytes, headers: dict[str, str]
) -> None:
    response = client.post(f"/v1/{endpoint}", content=content, headers=headers)
    check(client, response)
