"""Typed analytics events: every event type round-trips through JSON (hypothesis), factories
build the right payloads, secrets are redacted, and bad bytes raise a typed error."""

from __future__ import annotations

import inspect
import os
import time
import typing
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limelight.errors import ConfigError, EventDecodeError
from limelight.schemas import (
    REDACTED,
    ErrorPayload,
    Event,
    EventType,
    LLMResponsePayload,
    ToolCallPayload,
    UserInputPayload,
    decode_event,
    decode_events,
    encode_event,
    encode_events,
    event_size,
    redact,
)
from limelight.schemas._events import PAYLOAD_TYPES, EventPayload, _factory, new_event_id

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)

_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: st.text(),
    int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    float: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans(),
    uuid.UUID: st.uuids(),
    Any: json_values,
}


def _for_type(tp: Any) -> st.SearchStrategy[Any]:
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, type(int | None)):
        return st.one_of(*(_for_type(a) for a in args))
    if tp is type(None):
        return st.none()
    if origin is list:
        return st.lists(_for_type(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(_for_type(args[0]), _for_type(args[1]), max_size=4)
    raise AssertionError(f"no strategy for {tp!r}")


def payloads(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Every field of the payload class drawn from its declared type."""
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _for_type(hints[f.name]) for f in msgspec.structs.fields(cls)})


PAYLOAD_CLASSES = list(typing.get_args(EventPayload))


def events(cls: type[msgspec.Struct]) -> st.SearchStrategy[Event]:
    return st.builds(
        Event,
        event_type=st.just(PAYLOAD_TYPES[cls]),
        payload=payloads(cls),
        event_id=st.uuids(),
        run_id=st.none() | st.text(),
        user_id=st.none() | st.text(),
        session_id=st.none() | st.text(),
        parent_event_id=st.none() | st.uuids(),
        timestamp=st.floats(min_value=0, max_value=4e9),
        metadata=st.dictionaries(st.text(), json_values, max_size=4),
    )


any_event = st.one_of(*(events(cls) for cls in PAYLOAD_CLASSES))

# No per-example deadline or speed check: the machine running the suite may be loaded.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_event_type_has_exactly_one_payload_class() -> None:
    assert sorted(PAYLOAD_TYPES.values()) == sorted(EventType)
    required = {
        "user_input",
        "user_feedback",
        "agent_reasoning",
        "agent_planning",
        "agent_response",
        "llm_request",
        "llm_response",
        "llm_streaming_chunk",
        "tool_call",
        "tool_response",
        "function_execution",
        "api_request",
        "api_response",
        "error",
        "validation_error",
        "timeout_error",
        "session_start",
        "session_end",
        "performance_metric",
    }
    assert required <= {str(t) for t in EventType}


@pytest.mark.parametrize("cls", PAYLOAD_CLASSES, ids=lambda c: c.__name__)
def test_every_event_type_round_trips(cls: type[msgspec.Struct]) -> None:
    @relaxed
    @given(events(cls))
    def check(event: Event) -> None:
        assert decode_event(encode_event(event)) == event
        assert event_size(event) == len(encode_event(event))

    check()


@relaxed
@given(st.lists(any_event, max_size=8))
def test_a_batch_round_trips(batch: list[Event]) -> None:
    data = encode_events(batch)
    assert decode_events(data) == batch
    assert encode_events(iter(batch)) == data


@relaxed
@given(json_values)
def test_redaction_is_idempotent(value: Any) -> None:
    once = redact(value)
    assert redact(once) == once


def test_every_factory_builds_its_event_type() -> None:
    parent = uuid.uuid4()
    common: dict[str, Any] = {
        "run_id": "r1",
        "user_id": "u1",
        "session_id": "s1",
        "parent_event_id": parent,
        "metadata": {"team": "a"},
    }
    built = [
        Event.create_user_input("hi", **common),
        Event.create_user_feedback(rating=1.0, comment="good", **common),
        Event.create_agent_reasoning("a", "think", step=1, **common),
        Event.create_agent_planning("a", steps=["x", "y"], **common),
        Event.create_agent_response("a", "done", turns=2, **common),
        Event.create_llm_request("gpt-x", provider="openai", messages_count=2, **common),
        Event.create_llm_response("gpt-x", input_tokens=3, output_tokens=4, cost=0.5, **common),
        Event.create_llm_streaming_chunk("gpt-x", "tok", index=3, **common),
        Event.create_tool_call("search", {"q": "x"}, **common),
        Event.create_tool_response("search", ["r"], duration=0.1, **common),
        Event.create_function_execution("f", arguments={"a": 1}, result=2, **common),
        Event.create_api_request("GET", "http://x/y", **common),
        Event.create_api_response("GET", "http://x/y", 200, **common),
        Event.create_error("boom", **common),
        Event.create_validation_error("bad", field="a", value=3, **common),
        Event.create_timeout_error("ask", timeout=1.0, **common),
        Event.create_session_start(attributes={"app": "demo"}, **common),
        Event.create_session_end(duration=3.0, **common),
        Event.create_performance_metric("qps", 10.0, unit="1/s", **common),
    ]
    assert {e.event_type for e in built} == set(EventType)
    for event in built:
        assert (event.run_id, event.user_id, event.session_id) == ("r1", "u1", "s1")
        assert event.parent_event_id == parent
        assert event.metadata == {"team": "a"}
        assert isinstance(event.payload, tuple(PAYLOAD_TYPES))
        assert PAYLOAD_TYPES[type(event.payload)] == event.event_type
    assert len({e.event_id for e in built}) == len(built), "event ids must be unique"


#: The positional parameters of each factory, in order: public API, kept as it was.
POSITIONAL = {
    "create_user_input": ["text"],
    "create_user_feedback": [],
    "create_agent_reasoning": ["agent_name", "content"],
    "create_agent_planning": ["agent_name"],
    "create_agent_response": ["agent_name", "content"],
    "create_llm_request": ["model"],
    "create_llm_response": ["model"],
    "create_llm_streaming_chunk": ["model", "content"],
    "create_tool_call": ["tool_name", "arguments"],
    "create_tool_response": ["tool_name", "result"],
    "create_function_execution": ["function_name"],
    "create_api_request": ["method", "url"],
    "create_api_response": ["method", "url", "status_code"],
    "create_error": ["error"],
    "create_validation_error": ["message"],
    "create_timeout_error": ["operation"],
    "create_session_start": [],
    "create_session_end": [],
    "create_performance_metric": ["name", "value"],
}


def test_each_event_type_has_one_documented_factory_with_its_positional_parameters() -> None:
    assert sorted(POSITIONAL) == sorted(f"create_{kind}" for kind in EventType)
    for name, positional in POSITIONAL.items():
        factory = getattr(Event, name)
        params = inspect.signature(factory).parameters.values()
        assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == positional
        assert [p.name for p in params if p.kind is p.VAR_KEYWORD] == ["links"]
        assert factory.__doc__, f"{name} has no docstring"
        assert factory.__qualname__ == f"Event.{name}"


@relaxed
@given(data=st.data())
@pytest.mark.parametrize("cls", [c for c in PAYLOAD_CLASSES if c is not ErrorPayload])
def test_each_factory_puts_every_argument_in_its_payload(
    cls: type[msgspec.Struct], data: st.DataObject
) -> None:
    payload = data.draw(payloads(cls))
    factory = getattr(Event, f"create_{PAYLOAD_TYPES[cls]}")
    values = {name: getattr(payload, name) for name in cls.__struct_fields__}
    args = [values.pop(name) for name in POSITIONAL[factory.__name__]]
    event = factory(*args, **values, run_id="r")
    assert event.payload == payload
    assert (event.event_type, event.run_id) == (PAYLOAD_TYPES[cls], "r")


def test_a_factory_stub_must_take_exactly_the_fields_of_its_payload() -> None:
    with pytest.raises(TypeError, match=r"exactly the fields of UserInputPayload"):

        @_factory(UserInputPayload)
        def create_user_input(cls: Any, txt: str, **links: Any) -> Event:
            """A misspelt field."""

    with pytest.raises(TypeError, match=r"must be named create_user_input"):

        @_factory(UserInputPayload)
        def create_input(cls: Any, text: str, *, input_type: str = "", **links: Any) -> Event:
            """A name that is not the event type's."""


def test_event_id_is_set_once_and_survives_the_wire() -> None:
    event = Event.create_llm_response("m", input_tokens=1)
    again = decode_event(encode_event(event))
    assert again.event_id == event.event_id
    assert again.timestamp == event.timestamp
    assert isinstance(event.payload, LLMResponsePayload)


def test_error_from_an_exception_keeps_type_message_and_traceback() -> None:
    def fail() -> None:
        raise KeyError("missing")

    try:
        fail()
    except KeyError as exc:
        event = Event.create_error(exc, context={"step": 2})
    assert isinstance(event.payload, ErrorPayload)
    assert event.payload.error_type == "KeyError"
    assert event.payload.message == "'missing'"
    assert event.payload.traceback is not None
    assert "KeyError" in event.payload.traceback
    assert event.payload.context == {"step": 2}
    bare = Event.create_error(ValueError("x"))
    assert isinstance(bare.payload, ErrorPayload)
    assert bare.payload.traceback is None


def test_secrets_never_appear_in_an_event_or_its_json() -> None:
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8"
    event = Event.create_tool_call(
        "http_get",
        {
            "url": "https://api.example.com",
            "headers": {"Authorization": f"Bearer {key}", "X-Api-Key": key},
            "password": "hunter2",
            "access_token": "tok-123",
            "max_tokens": 10,
        },
        metadata={"api_key": key, "note": f"called with {key}", "client_secret": "s"},
    )
    data = encode_event(event)
    for secret in (key.encode(), b"hunter2", b"tok-123"):
        assert secret not in data
    assert isinstance(event.payload, ToolCallPayload)
    assert event.payload.arguments["max_tokens"] == 10, "token counts are not secrets"
    assert event.payload.arguments["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED}
    assert event.metadata["note"] == f"called with {REDACTED}"
    error = Event.create_error(RuntimeError(f"401 for api_key={key}"), include_traceback=False)
    assert key.encode() not in encode_event(error)
    text = Event.create_user_input(f"my key is {key}")
    assert isinstance(text.payload, UserInputPayload)
    assert key not in text.payload.text


def test_secrets_in_decoded_json_are_redacted_too() -> None:
    raw = (
        b'{"event_type":"user_input","payload":{"kind":"user_input","text":"hi"},'
        b'"metadata":{"password":"p4ss"}}'
    )
    assert decode_event(raw).metadata == {"password": REDACTED}


def test_a_payload_of_the_wrong_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="does not match the payload UserInputPayload"):
        Event(event_type=EventType.ERROR, payload=UserInputPayload(text="x"))


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"event_type":"nope","payload":{"kind":"user_input","text":"a"}}',
        b'{"event_type":"error","payload":{"kind":"user_input","text":"a"}}',
        b'{"event_type":"user_input","payload":{"kind":"user_input"}}',
    ],
)
def test_bad_bytes_raise_event_decode_error(data: bytes) -> None:
    with pytest.raises(EventDecodeError, match="could not decode an event"):
        decode_event(data)
    with pytest.raises(EventDecodeError, match="could not decode a list of events"):
        decode_events(b"[" + data + b"]")


def test_event_ids_are_time_ordered_version_7_and_immune_to_random_seed() -> None:
    import random

    random.seed(1)
    first = [Event.create_user_input("x").event_id for _ in range(3)]
    random.seed(1)
    second = [Event.create_user_input("x").event_id for _ in range(3)]
    assert not set(first) & set(second)
    for event_id in first:
        assert event_id.version == 7
        assert event_id.variant == uuid.RFC_4122
        assert uuid.UUID(str(event_id)) == event_id
        assert hash(uuid.UUID(str(event_id))) == hash(event_id)
    before = time.time_ns() // 1_000_000
    made = new_event_id()
    after = time.time_ns() // 1_000_000
    assert before <= made.int >> 80 <= after, "the first 48 bits are the creation time in ms"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_other_event_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, str(new_event_id()).encode())
        os._exit(0)
    os.close(write)
    mine = new_event_id()
    with os.fdopen(read, "rb") as pipe:
        theirs = uuid.UUID(pipe.read().decode())
    os.waitpid(pid, 0)
    assert theirs != mine


def test_a_misspelt_link_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="run"):
        Event.create_user_input("x", runid="r")  # type: ignore[call-arg]
    assert Event.create_user_input("x", metadata=None).metadata == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2", f"password={REDACTED}"),
        ("token: 100", "token: 100"),  # a count, not a secret
        ("Authorization: Bearer abcdefghij", f"Authorization: Bearer {REDACTED}"),
        ("x sk-proj-ABCDEFGHIJKLMNOP y", f"x {REDACTED} y"),
        ("the monkey sat", "the monkey sat"),
    ],
)
def test_secrets_in_free_text(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("X-Api-Key", True),
        ("Authorization", True),
        ("access_token", True),
        ("client_secret", True),
        ("password", True),
        ("max_tokens", False),
        ("input_tokens", False),
        ("key_count", False),
        ("tokenizer", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert (redact({key: "v"})[key] == REDACTED) is secret


def test_a_str_subclass_is_redacted_and_encodes_as_plain_text() -> None:
    class Text(str):
        """Like LangChain's TextAccessor: a str with extras."""

    from limelight.schemas import encode_event

    value = redact(Text("key sk-live-0123456789abcdefABCDEF in text"))
    assert type(value) is str
    assert "sk-live-0123456789abcdefABCDEF" not in value
    event = Event.create_user_input(Text("hello"), metadata={Text("api_key"): "secret"})
    assert type(event.payload.text) is str  # type: ignore[union-attr]
    assert event.metadata["api_key"] == REDACTED
    assert b"secret" not in encode_event(event)
