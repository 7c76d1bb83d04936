"""The agent client's ``Conversation``, over limelight's conversation.

It wraps :class:`~limelight.conversation.Conversation`.

The messages live in limelight's conversation (:attr:`Conversation.native`, which an agent
shares); this class keeps the earlier API around it: ``system_message``, ``reserve_tokens``,
a session id, the earlier JSON shape for ``to_dict``/``save``/``load``, ``branch`` and
``format_history``. Truncation is limelight's: a tool call is never separated from its
results; tokens are estimated as limelight estimates them (characters / 4).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .._conversation import Conversation as NativeConversation
from ..errors import ConfigError
from ._llm_client_models import ModelProfile, resolve_profile
from ._llm_client_types import Message, Role, ToolCall

__all__ = ["Conversation", "ConversationConfig", "TruncationStrategy"]

TruncationStrategy = Literal["sliding", "drop_oldest", "drop_middle", "summarize"]


@dataclass
class ConversationConfig:
    """A conversation's settings."""

    max_tokens: int | None = None
    truncation_strategy: TruncationStrategy = "sliding"
    reserve_tokens: int = 1000
    system_message: str | None = None
    preserve_system: bool = True
    session_id: str | None = None

    def __post_init__(self) -> None:
        if self.session_id is None:
            self.session_id = str(uuid.uuid4())


def _native_strategy(strategy: str) -> Literal["sliding", "drop_oldest", "drop_middle"]:
    if strategy not in get_args(TruncationStrategy):
        raise ConfigError(
            "truncation_strategy must be 'sliding', 'drop_oldest' or 'drop_middle', got "
            f"{strategy!r}"
        )
    # "summarize" was never implemented by the earlier package either: it slid.
    if strategy == "drop_oldest":
        return "drop_oldest"
    if strategy == "drop_middle":
        return "drop_middle"
    return "sliding"


def _budget(max_tokens: int | None, reserve_tokens: int) -> int | None:
    """limelight's token budget: the window less what is kept for the answer."""
    if max_tokens is None:
        return None
    if reserve_tokens < 0:
        raise ConfigError(f"reserve_tokens must be >= 0, got {reserve_tokens}")
    return max(1, max_tokens - reserve_tokens)


class Conversation:
    """A chat's messages, with truncation to a token budget, forks and files.

    :param messages: messages to start with (not the system message).
    :param system_message: kept first whatever truncation drops.
    :param max_tokens: the context window to fit; ``None``: no truncation.
    :param truncation_strategy: ``"sliding"``, ``"drop_oldest"`` or ``"drop_middle"``
        (``"summarize"`` slides, as it did before).
    :param reserve_tokens: tokens of ``max_tokens`` kept for the answer.
    :raises ConfigError: an unknown strategy or a negative reserve.
    """

    def __init__(
        self,
        messages: list[Message] | None = None,
        *,
        system_message: str | None = None,
        max_tokens: int | None = None,
        truncation_strategy: TruncationStrategy = "sliding",
        reserve_tokens: int = 1000,
        session_id: str | None = None,
    ) -> None:
        self.config = ConversationConfig(
            max_tokens=max_tokens,
            truncation_strategy=truncation_strategy,
            reserve_tokens=reserve_tokens,
            system_message=system_message,
            session_id=session_id,
        )
        self.native = NativeConversation(
            system_message,
            max_tokens=_budget(max_tokens, reserve_tokens),
            truncation=_native_strategy(truncation_strategy),
        )
        now = time.time()
        self._metadata: dict[str, Any] = {"created_at": now, "updated_at": now}
        for m in messages or ():
            self.add_message(m)

    @classmethod
    def around(cls, native: NativeConversation, session_id: str | None = None) -> Conversation:
        """A conversation viewing ``native`` (an agent's)."""
        conv = cls(
            system_message=native.system,
            truncation_strategy=native.truncation,
            session_id=session_id,
        )
        conv.native = native
        return conv

    @property
    def session_id(self) -> str:
        return self.config.session_id or ""

    @property
    def system_message(self) -> str | None:
        return self.native.system

    @system_message.setter
    def system_message(self, content: str | None) -> None:
        self.config.system_message = content
        self.native.system = content
        self._touch()

    def _touch(self) -> None:
        self._metadata["updated_at"] = time.time()

    def __len__(self) -> int:
        return len(self.native)

    def __iter__(self) -> Iterator[Message]:
        return iter([Message.from_native(m) for m in self.native.messages])

    def __getitem__(self, index: int) -> Message:
        return Message.from_native(self.native.messages[index])

    # -- adding -------------------------------------------------------------------------------

    def add_message(self, message: Message | Mapping[str, Any]) -> Conversation:
        """Append a message (a system message replaces the system prompt)."""
        if isinstance(message, Mapping):
            message = Message.from_dict(message)
        if not isinstance(message, Message):
            raise ConfigError(f"add_message takes a Message or a dict, got {message!r:.80}")
        self.native.add(message.to_native())
        self.config.system_message = self.native.system
        self._touch()
        return self

    def add_user(self, content: str) -> Conversation:
        return self.add_message(Message.user(content))

    def add_assistant(self, content: str) -> Conversation:
        return self.add_message(Message.assistant(content))

    def add_assistant_with_tools(
        self, content: str | None, tool_calls: list[ToolCall]
    ) -> Conversation:
        return self.add_message(Message.assistant(content or "", tool_calls=tool_calls))

    def add_tool_result(
        self, tool_call_id: str, content: str, name: str | None = None
    ) -> Conversation:
        return self.add_message(Message.tool_result(tool_call_id, content, name))

    def add_system(self, content: str) -> Conversation:
        """Set the system message (replacing any)."""
        self.system_message = content
        return self

    # -- reading ------------------------------------------------------------------------------

    def get_messages(
        self, model: type[ModelProfile] | str | None = None, include_system: bool = True
    ) -> list[Message]:
        """The messages to send; given a ``model``, truncated to ``max_tokens`` less
        ``reserve_tokens`` (and the model's window) under the conversation's strategy."""
        if model is not None and self.native.max_tokens is not None:
            natives = self.native.get_messages(resolve_profile(model).key)
        else:
            system = self.native.system
            head = [Message.system(system).to_native()] if system else []
            natives = head + self.native.messages
        out = [Message.from_native(m) for m in natives]
        if not include_system:
            out = [m for m in out if m.role is not Role.SYSTEM]
        return out

    def get_messages_dict(
        self, model: type[ModelProfile] | str | None = None, include_system: bool = True
    ) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.get_messages(model, include_system)]

    def get_last_message(self) -> Message | None:
        messages = self.native.messages
        return Message.from_native(messages[-1]) if messages else None

    def _last(self, role: Role) -> Message | None:
        for m in reversed(self.native.messages):
            if m.role == role.value:
                return Message.from_native(m)
        return None

    def get_last_user_message(self) -> Message | None:
        return self._last(Role.USER)

    def get_last_assistant_message(self) -> Message | None:
        return self._last(Role.ASSISTANT)

    def count_tokens(self, model: type[ModelProfile] | str) -> int:
        """Tokens of the whole conversation, counted with the model's profile."""
        profile = resolve_profile(model)
        total = profile.count_tokens(self.native.system) if self.native.system else 0
        for m in self.native.messages:
            total += profile.count_tokens(m.content) if m.content else 0
            for call in m.tool_calls:
                total += profile.count_tokens(call.name) + profile.count_tokens(call.arguments)
        return total

    # -- copies -------------------------------------------------------------------------------

    def clear(self) -> Conversation:
        """Forget every message (the system message stays)."""
        self.native.clear()
        self._touch()
        return self

    def _copy(self, native: NativeConversation) -> Conversation:
        conv = Conversation(
            system_message=self.system_message,
            max_tokens=self.config.max_tokens,
            truncation_strategy=self.config.truncation_strategy,
            reserve_tokens=self.config.reserve_tokens,
        )
        conv.native = native
        return conv

    def fork(self) -> Conversation:
        """An independent copy with a new session id."""
        return self._copy(self.native.fork())

    def branch(self, from_index: int = 0) -> Conversation:
        """A copy of the first ``from_index`` messages, with a new session id."""
        native = NativeConversation(
            self.native.system,
            max_tokens=self.native.max_tokens,
            truncation=self.native.truncation,
            messages=self.native.messages[:from_index],
        )
        return self._copy(native)

    # -- files --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The earlier package's JSON shape."""
        return {
            "session_id": self.session_id,
            "system_message": self.system_message,
            "messages": [m.to_dict() for m in self],
            "config": {
                "max_tokens": self.config.max_tokens,
                "truncation_strategy": self.config.truncation_strategy,
                "reserve_tokens": self.config.reserve_tokens,
            },
            "metadata": dict(self._metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        """:raises ConfigError: not a saved conversation."""
        if not isinstance(data, Mapping) or not isinstance(data.get("messages", []), list):
            raise ConfigError("not a saved conversation: expected a dict with a messages list")
        config = data.get("config") or {}
        conv = cls(
            [Message.from_dict(m) for m in data.get("messages", [])],
            system_message=data.get("system_message"),
            max_tokens=config.get("max_tokens"),
            truncation_strategy=config.get("truncation_strategy", "sliding"),
            reserve_tokens=config.get("reserve_tokens", 1000),
            session_id=data.get("session_id"),
        )
        conv._metadata = dict(data.get("metadata") or conv._metadata)
        return conv

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, json_str: str) -> Conversation:
        """:raises ConfigError: not JSON, or not a saved conversation."""
        try:
            data = json.loads(json_str)
        except ValueError as exc:
            raise ConfigError(f"not a saved conversation: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the conversation as JSON, atomically (a temporary file renamed over it)."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Conversation:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        system = "set" if self.system_message else "unset"
        return (
            f"Conversation(session_id={self.session_id!r}, messages={len(self)}, system={system})"
        )

    def format_history(self, max_messages: int | None = None) -> str:
        """The conversation as readable lines (``[User] ...``), the last ``max_messages``."""
        lines = []
        if self.system_message:
            lines.append(f"[System] {self.system_message}")
        messages = list(self)
        if max_messages is not None:
            messages = messages[-max_messages:]
        for m in messages:
            label = m.role.value.capitalize()
            if m.tool_calls:
                calls = ", ".join(f"{c.name}({c.arguments})" for c in m.tool_calls)
                lines.append(f"[{label}] {m.content or ''} [tool calls: {calls}]".rstrip())
            elif m.role is Role.TOOL:
                lines.append(f"[Tool {m.name or m.tool_call_id}] {m.content}")
            else:
                lines.append(f"[{label}] {m.content}")
        return "\n".join(lines)
