"""Conversations: the messages of a chat, truncated, forked, saved and loaded.

A conversation holds a chat's messages, with truncation to a model's context window that never
separates a tool call from its results and always keeps the system message; fork, and save /
load as msgspec JSON."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, Literal, get_args

import msgspec

from ._models import get_model_profile
from .errors import ConfigError
from .schemas import Message, ToolCall

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "Conversation",
    "Truncation",
    "message_tokens",
]

Truncation = Literal["sliding", "drop_oldest", "drop_middle"]
#: The token estimate when no tokenizer is at hand: characters / 4, rounded up.
CHARS_PER_TOKEN: Final = 4
#: Tokens a chat format spends per message on roles and separators.
MESSAGE_OVERHEAD_TOKENS: Final = 4
_FORMAT_VERSION: Final = 1


def _tokens(text: str | None) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0


def message_tokens(message: Message) -> int:
    """Estimated tokens of one message (content, name, tool calls, per-message overhead)."""
    count = MESSAGE_OVERHEAD_TOKENS + _tokens(message.content) + _tokens(message.name)
    for call in message.tool_calls:
        count += _tokens(call.name) + _tokens(call.arguments) + _tokens(call.id)
    return count


class _Saved(msgspec.Struct, kw_only=True):
    version: int = _FORMAT_VERSION
    system: str | None = None
    max_tokens: int | None = None
    truncation: Truncation = "sliding"
    messages: list[Message] = []


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Saved)


def _units(messages: Sequence[Message]) -> list[list[Message]]:
    """Messages grouped into what truncation may drop only whole: an assistant message with
    tool calls together with the tool results answering it; any other message alone."""
    units: list[list[Message]] = []
    open_ids: set[str] = set()
    for m in messages:
        if m.role == "tool" and units and m.tool_call_id in open_ids:
            units[-1].append(m)
            continue
        units.append([m])
        open_ids = {c.id for c in m.tool_calls} if m.role == "assistant" else set()
    return units


class Conversation:
    """The messages of one chat.

    :param system: the system prompt, kept first whatever truncation drops.
    :param max_tokens: a token budget for the messages (besides the model's window).
    :param truncation: what to drop when over budget: ``"sliding"`` keeps the newest
        messages that fit, starting at a user turn; ``"drop_oldest"`` drops the oldest until
        it fits; ``"drop_middle"`` keeps the first message (the task, with its tool results
        if it made calls) and the newest.
    :raises ConfigError: an unknown truncation or a budget < 1.
    """

    __slots__ = (
        "_counted",
        "_head",
        "_messages",
        "_tokens",
        "max_tokens",
        "system",
        "truncation",
    )

    def __init__(
        self,
        system: str | None = None,
        *,
        max_tokens: int | None = None,
        truncation: Truncation = "sliding",
        messages: Iterable[Message] = (),
    ) -> None:
        if truncation not in get_args(Truncation):
            raise ConfigError(
                f"truncation must be one of {', '.join(get_args(Truncation))}, got {truncation!r}"
            )
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        self.system = system
        self.max_tokens = max_tokens
        self.truncation: Truncation = truncation
        self._messages: list[Message] = []
        # The estimate of the first ``_counted`` messages, brought up to date when a budget
        # asks for it (:meth:`_message_tokens`): a conversation that no budget bounds (a model
        # without a known window, no ``max_tokens``) never counts, and one that does counts
        # each message once, so the common case (it all fits) costs no walk.
        self._tokens = 0
        self._counted = 0
        #: The system message sent first, and the prompt it was made of.
        self._head: tuple[str | None, list[Message], int] = (None, [], 0)
        for m in messages:
            self.add(m)

    # -- building ---------------------------------------------------------------------------

    def add(self, message: Message) -> Message:
        """Append a message. A system message replaces the system prompt.

        :raises ConfigError: ``message`` is not a :class:`Message`.
        """
        if not isinstance(message, Message):
            raise ConfigError(f"a conversation holds Messages, got {type(message).__name__}")
        if message.role == "system":
            self.system = message.content
        else:
            self._messages.append(message)
        return message

    def add_user(self, content: str, *, name: str | None = None) -> Message:
        return self.add(Message.user(content, name=name))

    def add_assistant(
        self, content: str | None = None, *, tool_calls: Sequence[ToolCall] = ()
    ) -> Message:
        return self.add(Message.assistant(content, tool_calls=list(tool_calls)))

    def add_tool_result(
        self, tool_call_id: str, content: str, *, name: str | None = None
    ) -> Message:
        return self.add(Message.tool(content, tool_call_id=tool_call_id, name=name))

    def clear(self) -> None:
        """Forget every message (the system prompt stays)."""
        self._messages.clear()
        self._tokens = self._counted = 0

    def _message_tokens(self) -> int:
        """Estimated tokens of every message but the system prompt (counted once each)."""
        messages = self._messages
        counted = self._counted
        if counted < len(messages):
            self._tokens += sum(map(message_tokens, itertools.islice(messages, counted, None)))
            self._counted = len(messages)
        return self._tokens

    def _system_head(self) -> tuple[list[Message], int]:
        """The system message to send first (none without a prompt) and its tokens, made
        again only when the prompt changed."""
        system = self.system
        made_of, head, tokens = self._head
        if made_of != system:
            head = [Message.system(system)] if system else []
            tokens = sum(map(message_tokens, head))
            self._head = (system, head, tokens)
        return head, tokens

    # -- reading ----------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Every message but the system prompt, untruncated (a copy)."""
        return list(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def token_count(self) -> int:
        """Estimated tokens of the whole conversation, system prompt included."""
        return self._system_head()[1] + self._message_tokens()

    def budget(self, model: str | None = None) -> int | None:
        """The tokens :meth:`get_messages` may use for ``model``: the smaller of
        ``max_tokens`` and the model's context window less its answer's reserve."""
        budget = self.max_tokens
        profile = get_model_profile(model) if model else None
        if profile is not None:
            reserve = min(profile.max_output_tokens or 0, profile.context_window // 4)
            window = profile.context_window - reserve
            budget = window if budget is None else min(budget, window)
        return budget

    def get_messages(
        self, model: str | None = None, *, max_tokens: int | None = None
    ) -> list[Message]:
        """The messages to send: system prompt first, then as many of the others as fit the
        budget (see :meth:`budget`; ``max_tokens`` lowers it further) under the truncation
        strategy. A tool call is never separated from its results, and the newest message is
        always kept, even when it alone is over budget (it cannot be split)."""
        budget = self.budget(model)
        if max_tokens is not None:
            budget = max_tokens if budget is None else min(budget, max_tokens)
        head, head_tokens = self._system_head()
        if budget is None:
            return head + self._messages
        available = budget - head_tokens
        if self._message_tokens() <= available:
            return head + self._messages
        units = _units(self._messages)
        kept = _truncate(
            units, [sum(map(message_tokens, u)) for u in units], available, self.truncation
        )
        return head + [m for u in kept for m in u]

    # -- copies and files -------------------------------------------------------------------

    def fork(self) -> Conversation:
        """An independent copy: what is added to one is not seen by the other."""
        copy = Conversation.__new__(Conversation)
        copy.system = self.system
        copy.max_tokens = self.max_tokens
        copy.truncation = self.truncation
        copy._messages = list(self._messages)  # checked as they were added
        copy._tokens = self._tokens
        copy._counted = self._counted
        copy._head = self._head
        return copy

    def to_json(self) -> bytes:
        return _encoder.encode(
            _Saved(
                system=self.system,
                max_tokens=self.max_tokens,
                truncation=self.truncation,
                messages=self._messages,
            )
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Conversation:
        """:raises ConfigError: the data is not a saved conversation."""
        try:
            saved = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise ConfigError(f"not a saved conversation: {exc}") from exc
        if saved.version != _FORMAT_VERSION:
            raise ConfigError(
                f"saved conversation has format version {saved.version}; this limelight "
                f"reads version {_FORMAT_VERSION}"
            )
        return cls(
            saved.system,
            max_tokens=saved.max_tokens,
            truncation=saved.truncation,
            messages=saved.messages,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the conversation as JSON, atomically: a temporary file in the same folder,
        flushed to disk, then renamed over ``path``, so a crash never leaves half a file."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Conversation:
        """:raises ConfigError: the file is not a saved conversation.
        :raises OSError: the file cannot be read."""
        return cls.from_json(Path(path).read_bytes())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Conversation):
            return NotImplemented
        return (
            self.system == other.system
            and self.max_tokens == other.max_tokens
            and self.truncation == other.truncation
            and self._messages == other._messages
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"<Conversation {len(self._messages)} messages, ~{self.token_count()} tokens>"


def _truncate(
    units: list[list[Message]], costs: list[int], available: int, strategy: Truncation
) -> list[list[Message]]:
    if not units or sum(costs) <= available:
        return units
    if strategy == "drop_oldest":
        start, total = 0, sum(costs)
        while total > available and start < len(units) - 1:
            total -= costs[start]
            start += 1
        return units[start:]
    # Fill from the newest backwards; the newest unit is kept whatever it costs.
    tail_start, total = len(units) - 1, costs[-1]
    while tail_start > 0 and total + costs[tail_start - 1] <= available:
        tail_start -= 1
        total += costs[tail_start]
    if strategy == "sliding":
        # Start the window at a user turn, so it does not open mid-answer.
        for i in range(tail_start, len(units) - 1):
            if units[i][0].role == "user":
                return units[i:]
        return units[tail_start:]
    # drop_middle: the first unit (the task) as well, if it fits beside the newest.
    if tail_start > 0 and costs[0] + costs[-1] <= available:
        tail_start, total = len(units) - 1, costs[0] + costs[-1]
        while tail_start > 1 and total + costs[tail_start - 1] <= available:
            tail_start -= 1
            total += costs[tail_start]
        return [units[0], *units[tail_start:]]
    return units[tail_start:]
