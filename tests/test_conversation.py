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


def test_counts_follow_every_change_between_reads() -> None:
    """Tokens are counted when a budget asks, the system message made when the prompt
    changes: reads between changes (fork, clear, a new prompt) still see each change."""
    conv = chat()
    assert conv.token_count() == sum(map(message_tokens, conv.get_messages()))
    conv.system = "A much longer system prompt than before, to change the count."
    assert conv.get_messages()[0] == Message.system(conv.system)
    assert conv.token_count() == sum(map(message_tokens, conv.get_messages()))
    fork = conv.fork()
    fork.add_user("one more question, only in the fork")
    fork.system = None
    assert fork.get_messages()[0].role == "user"
    assert fork.token_count() == sum(map(message_tokens, fork.get_messages()))
    assert conv.token_count() == sum(map(message_tokens, conv.get_messages()))
    conv.clear()
    conv.add_user("again")
    assert conv.token_count() == sum(map(message_tokens, conv.get_messages()))
    # A budget sees messages added after the last count.
    conv.max_tokens = conv.token_count() + 5
    conv.add_assistant("a long answer " * 20)
    assert [m.role for m in conv.get_messages()] == ["system", "assistant"]


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
    for kind in draw(st.lists(st.sampled_from(["user", "text", "tools"]), max_size=30)):
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


def _units(messages: list[Message]) -> list[list[Message]]:
    """What may only be dropped whole: a message with the tool results that follow it (the
    generator puts a call's results right after it)."""
    units: list[list[Message]] = []
    for m in messages:
        if m.role == "tool" and units:
            units[-1].append(m)
        else:
            units.append([m])
    return units


def _check_truncation(
    messages: list[Message], system: str | None, strategy: str, budget: int, out: list[Message]
) -> None:
    """The invariants every strategy keeps, then what each strategy keeps, as documented in
    :class:`Conversation`, for ``out = get_messages(...)`` under ``budget`` tokens."""
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
    system_cost = message_tokens(Message.system(system)) if system else 0
    # Nothing is dropped when everything fits.
    if system_cost + sum(map(message_tokens, messages)) <= budget or not messages:
        assert body == messages
        return
    # Over budget: which units each strategy keeps.
    units = _units(messages)
    costs = [sum(map(message_tokens, u)) for u in units]
    available = budget - system_cost
    n = len(units)
    index = {id(u[0]): i for i, u in enumerate(units)}
    kept = [index[id(m)] for m in body if id(m) in index]
    assert [m for i in kept for m in units[i]] == body  # whole units only

    def fitting_suffix(first: int, spent: int) -> int:
        """The start of the longest run of units from the newest back to ``first`` that
        fits beside ``spent`` tokens (the newest alone if none does)."""
        start = n - 1
        while start > first and spent + sum(costs[start - 1 :]) <= available:
            start -= 1
        return start

    newest = fitting_suffix(0, 0)
    if strategy == "drop_oldest":
        # The oldest are dropped, no more than needed.
        assert kept == list(range(newest, n))
    elif strategy == "sliding":
        # The newest that fit, starting at the first user turn among them, if any.
        users = [i for i in range(newest, n - 1) if units[i][0].role == "user"]
        start = users[0] if users else newest
        assert kept == list(range(start, n))
        if users:
            assert body[0].role == "user"
    else:
        # drop_middle: the first unit (the task) stays when it fits beside the newest; the
        # middle goes, and as many of the newest as fit beside the task stay.
        if n > 1 and costs[0] + costs[-1] <= available:
            assert kept == [0, *range(fitting_suffix(1, costs[0]), n)]
            assert body[0] is messages[0]
        else:
            assert kept == list(range(newest, n))


@settings(max_examples=300, deadline=None)
@given(
    messages=conversations(),
    system=st.none() | words,
    share=st.integers(1, 110),
    strategy=st.sampled_from(STRATEGIES),
)
def test_truncation_invariants(
    messages: list[Message], system: str | None, share: int, strategy: str
) -> None:
    conv = Conversation(system, truncation=strategy, messages=messages)  # type: ignore[arg-type]
    # A budget relative to the conversation's size: most examples then have to cut.
    budget = max(1, conv.token_count() * share // 100)
    _check_truncation(messages, system, strategy, budget, conv.get_messages(max_tokens=budget))


SMALL_MODEL = "hypothesis-small-window"


@settings(max_examples=300, deadline=None)
@given(
    messages=conversations(),
    system=st.none() | words,
    share=st.integers(1, 140),
    max_output=st.none() | st.integers(0, 200),
    own_share=st.none() | st.integers(1, 110),
    prefix=st.sampled_from(["", "openrouter/"]),
    strategy=st.sampled_from(STRATEGIES),
)
def test_truncation_invariants_for_a_models_context_window(
    messages: list[Message],
    system: str | None,
    share: int,
    max_output: int | None,
    own_share: int | None,
    prefix: str,
    strategy: str,
) -> None:
    size = Conversation(system, messages=messages).token_count()
    window = max(1, size * share // 100)
    own_budget = None if own_share is None else max(1, size * own_share // 100)
    register_model(
        ModelProfile(name=SMALL_MODEL, context_window=window, max_output_tokens=max_output)
    )
    conv = Conversation(
        system,
        max_tokens=own_budget,
        truncation=strategy,  # type: ignore[arg-type]
        messages=messages,
    )
    # The window less the answer's reserve (at most a quarter of it), and the
    # conversation's own budget if lower.
    budget = window - min(max_output or 0, window // 4)
    if own_budget is not None:
        budget = min(budget, own_budget)
    model = prefix + SMALL_MODEL
    assert conv.budget(model) == budget
    _check_truncation(messages, system, strategy, budget, conv.get_messages(model=model))
