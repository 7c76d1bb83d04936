"""Conversations: building, truncation invariants (hypothesis), fork, save / load; model
profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limelight.conversation import Conversation, message_tokens
from limelight.errors import ConfigError
from limelight.models import ModelProfile, register_model
from limelight.schemas import Message, ToolCall

STRATEGIES = ["sliding", "drop_oldest", "drop_middle"]


def chat(system: str | None = "You are terse.", **kwargs: object) -> Conversation:
    conv = Conversation(system, **kwargs)  # type: ignore[arg-type]
    conv.add_user("What is 2 + 2?")
    conv.add_assistant(tool_calls=[ToolCall(id="a", name="add", arguments='{"a":2,"b":2}')])
    conv.add_tool_result("a", "4", name="add")
    conv.add_assistant("4.")
    return conv


def test_messages_come_back_in_order_with_the_system_prompt_first() -> None:
    conv = chat()
    roles = [m.role for m in conv.get_messages()]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert len(conv) == 4
    assert conv.token_count() == sum(message_tokens(m) for m in conv.get_messages())


def test_a_system_message_added_replaces_the_system_prompt() -> None:
    conv = chat()
    conv.add(Message.system("Be verbose."))
    assert conv.get_messages()[0] == Message.system("Be verbose.")
    assert [m.role for m in conv.messages].count("system") == 0


def test_fork_is_independent() -> None:
    conv = chat()
    fork = conv.fork()
    assert fork == conv
    fork.add_user("and 3 + 3?")
    assert len(fork) == len(conv) + 1
    conv.clear()
    assert len(fork) == 5


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    conv = chat(max_tokens=500, truncation="drop_middle")
    path = tmp_path / "conv.json"
    conv.save(path)
    loaded = Conversation.load(path)
    assert loaded == conv
    assert loaded.truncation == "drop_middle"
    assert os.listdir(tmp_path) == ["conv.json"]


def test_save_is_atomic_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conv.json"
    chat().save(path)
    before = path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    bigger = chat()
    bigger.add_user("more")
    with pytest.raises(OSError, match="disk full"):
        bigger.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["conv.json"]


def test_load_rejects_what_is_not_a_conversation(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"messages": [{"role": "wizard"}]}')
    with pytest.raises(ConfigError, match="not a saved conversation"):
        Conversation.load(path)
    path.write_text('{"version": 99}')
    with pytest.raises(ConfigError, match="format version 99"):
        Conversation.load(path)


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="truncation must be one of"):
        Conversation(truncation="random")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_tokens"):
        Conversation(max_tokens=0)
    with pytest.raises(ConfigError, match="holds Messages"):
        Conversation().add("hello")  # type: ignore[arg-type]


def test_get_messages_truncates_to_the_models_context_window() -> None:
    register_model(ModelProfile(name="tiny-test-model", context_window=60))
    conv = Conversation("sys")
    for i in range(20):
        conv.add_user(f"question number {i} " * 3)
        conv.add_assistant(f"answer {i}")
    full = conv.get_messages()
    cut = conv.get_messages(model="tiny-test-model")
    assert len(cut) < len(full)
    assert sum(message_tokens(m) for m in cut) <= 60
    assert cut[0] == Message.system("sys")
    assert cut[-1] == full[-1]
    # Unknown models are not truncated.
    assert conv.get_messages(model="unknown-model-x") == full


def test_drop_middle_keeps_the_task_and_the_newest() -> None:
    conv = Conversation(truncation="drop_middle")
    conv.add_user("THE TASK")
    for i in range(30):
        conv.add_assistant(f"step {i} " * 5)
    kept = conv.get_messages(max_tokens=80)
    assert kept[0].content == "THE TASK"
    assert kept[-1].content == conv.messages[-1].content
    assert len(kept) < 31


def test_sliding_starts_at_a_user_turn() -> None:
    conv = Conversation(truncation="sliding")
    for i in range(10):
        conv.add_user(f"q{i}")
        conv.add_assistant(f"a long answer number {i} " * 2)
        conv.add_assistant(f"and more {i}")
    kept = conv.get_messages(max_tokens=70)
    assert kept[0].role == "user"
    assert kept[-1] == conv.messages[-1]


# -- properties -----------------------------------------------------------------------------

words = st.text(alphabet="abc xyz", min_size=0, max_size=60)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    counter = 0
    for kind in draw(st.lists(st.sampled_from(["user", "text", "tools"]), max_size=25)):
        if kind == "user":
            messages.append(Message.user(draw(words)))
        elif kind == "text":
            messages.append(Message.assistant(draw(words)))
        else:
            n = draw(st.integers(1, 3))
            calls = []
            for _ in range(n):
                counter += 1
                calls.append(ToolCall(id=f"c{counter}", name="t", arguments=draw(words)))
            messages.append(Message.assistant(draw(st.none() | words), tool_calls=calls))
            messages.extend(Message.tool(draw(words), tool_call_id=c.id) for c in calls)
    return messages


def _is_subsequence(part: list[Message], whole: list[Message]) -> bool:
    it = iter(whole)
    return all(any(m is w for w in it) for m in part)


@settings(max_examples=300, deadline=None)
@given(
    messages=conversations(),
    system=st.none() | words,
    budget=st.integers(1, 400),
    strategy=st.sampled_from(STRATEGIES),
)
def test_truncation_invariants(
    messages: list[Message], system: str | None, budget: int, strategy: str
) -> None:
    conv = Conversation(system, truncation=strategy, messages=messages)  # type: ignore[arg-type]
    out = conv.get_messages(max_tokens=budget)
    body = out[1:] if system else out
    # The system prompt is always kept, first.
    if system:
        assert out[0] == Message.system(system)
    # Only drops: what is kept is in the original order.
    assert _is_subsequence(body, messages)
    # The newest message is always kept.
    if messages:
        assert body
        assert body[-1] is messages[-1]
    # A tool call and its results are never separated.
    kept_calls = {c.id for m in body for c in m.tool_calls}
    kept_results = {m.tool_call_id for m in body if m.role == "tool"}
    all_results = {m.tool_call_id for m in messages if m.role == "tool"}
    assert kept_results <= kept_calls
    assert kept_calls & all_results <= kept_results
    # Within budget, unless only the newest message (with its tool group) remains.
    total = sum(message_tokens(m) for m in out)
    if total > budget and body:
        assert body[0].role != "tool"
        assert all(m.role == "tool" for m in body[1:])
    # Nothing is dropped when everything fits.
    if conv.token_count() <= budget:
        assert body == messages
