"""The requests a workload sends: prompts, follow-up turns, and agent tasks.

Prompts are synthetic, of sampled lengths, or come from a JSONL file; conversations add their
follow-up turns; the built-in agent has scripted tools of configurable latency (or the user's
own agent factory takes its place)."""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

from ..errors import ConfigError
from ..schemas import Message
from ..sim._config import CHARS_PER_TOKEN, sample_length
from ._config import Workload, parse_length

__all__ = ["Prompt", "PromptSource", "builtin_agent", "load_agent_factory", "load_prompts"]

_WORDS: tuple[str, ...] = (
    "actor",
    "mailbox",
    "token",
    "stream",
    "latency",
    "model",
    "agent",
    "tool",
)
_WORDS += ("budget", "schedule", "request", "answer", "window", "server", "client", "quota")
_WORDS += ("deadline", "context", "prompt", "benchmark", "throughput", "cache", "batch")


class Prompt(msgspec.Struct, frozen=True, kw_only=True):
    """One request's input: its messages and the ``max_tokens`` to ask for."""

    messages: list[Message]
    max_tokens: int | None


class _PromptLine(msgspec.Struct, kw_only=True):
    prompt: str | None = None
    messages: list[Message] | None = None
    max_tokens: int | None = None


def load_prompts(path: str) -> list[Prompt]:
    """Read a JSONL prompts file: one ``{"prompt": "..."}`` or ``{"messages": [...]}`` per
    line, with an optional ``"max_tokens"``. Blank lines are skipped.

    :raises ConfigError: the file cannot be read, or a line is not such an object.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the prompts file {path!r}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the prompts file {path!r} is not UTF-8 text (byte {exc.start}: {exc.reason}): "
            "save it as UTF-8 JSONL"
        ) from exc
    decoder = msgspec.json.Decoder(_PromptLine)
    prompts: list[Prompt] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise ConfigError(
                f"{path}:{number}: expected an object with 'prompt' or 'messages': {exc}"
            ) from exc
        if item.messages:
            messages = item.messages
        elif item.prompt is not None:
            messages = [Message.user(item.prompt)]
        else:
            raise ConfigError(f"{path}:{number}: the object has neither 'prompt' nor 'messages'")
        prompts.append(Prompt(messages=messages, max_tokens=item.max_tokens))
    if not prompts:
        raise ConfigError(f"the prompts file {path!r} holds no prompts")
    return prompts


def _text(rng: random.Random, tokens: int) -> str:
    words: list[str] = []
    size = 0
    target = tokens * CHARS_PER_TOKEN
    while size < target:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[: max(target - 1, 1)]


class PromptSource:
    """The prompts of a workload, request by request, reproducible from its seed.

    :param workload: the workload (lengths, prompts file, seed).
    :param file_prompts: the prompts read from ``workload.prompts_file``.
    :param worker: the worker process this source is for, when several send one run: its
        lengths come from a stream of its own (seeded by the seed and ``worker``), and
        session ``i`` takes the file's prompt ``i`` (cycling), whichever worker sends it.
    """

    def __init__(
        self, workload: Workload, file_prompts: Sequence[Prompt] = (), *, worker: int | None = None
    ) -> None:
        self._prompt_length = parse_length(workload.prompt_tokens)
        self._output_length = parse_length(workload.output_tokens)
        self._rng = random.Random(workload.seed if worker is None else f"{workload.seed}/{worker}")
        self.file_prompts = list(file_prompts)
        self._by_index = worker is not None
        self._next = 0

    def max_tokens(self) -> int:
        return sample_length(self._output_length, self._rng)

    def user_text(self, index: int) -> str:
        """A synthetic user message of a sampled length, unique per ``index`` (so a server's
        prefix cache does not answer from an earlier request)."""
        tokens = sample_length(self._prompt_length, self._rng)
        return f"{index}: " + _text(self._rng, max(tokens - 1, 1))

    def next(self, index: int) -> Prompt:
        if self.file_prompts:
            number = index if self._by_index else self._next
            prompt = self.file_prompts[number % len(self.file_prompts)]
            self._next += 1
            if prompt.max_tokens is None:
                return Prompt(messages=prompt.messages, max_tokens=self.max_tokens())
            return prompt
        return Prompt(messages=[Message.user(self.user_text(index))], max_tokens=self.max_tokens())


def builtin_agent_tools(workload: Workload) -> list[Any]:
    """``workload.tools`` scripted tools that sleep ``tool_latency ± jitter`` seconds and
    answer with canned text."""
    from ..tools import Tool

    rng = random.Random(workload.seed)
    names = ["lookup", "calculate", "fetch_page", "query_db", "translate", "summarize_doc"]
    tools = []
    latency, jitter = workload.tool_latency, workload.tool_latency_jitter
    for n in range(workload.tools):
        name = names[n % len(names)] + ("" if n < len(names) else f"_{n}")

        async def scripted(query: str, _name: str = name) -> str:
            """A scripted tool: answers after its configured latency.

            :param query: what to look up.
            """
            await anyio.sleep(max(0.0, latency + rng.uniform(-jitter, jitter)))
            return f"{_name} result for {query[:40]!r}: 42"

        tools.append(Tool(scripted, name=name, description=f"Scripted tool {name}."))
    return tools


def builtin_agent(model: Any, workload: Workload, *, name: str, max_tokens: int) -> Any:
    """The built-in benchmark agent on ``model`` (a provider pool) with the scripted tools,
    answering at most ``max_tokens`` tokens per model call."""
    from ..agents import Agent, AgentConfig

    return Agent(
        model=model,
        tools=builtin_agent_tools(workload),
        system="You are a benchmark agent: use the tools when they help, then answer.",
        config=AgentConfig(max_turns=workload.max_turns, max_tokens=max_tokens),
        name=name,
    )


def load_agent_factory(spec: str) -> Callable[[Any], Any]:
    """Import the ``module:function`` agent factory.

    :raises ConfigError: the module or function cannot be found, or is not callable.
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import the agent factory module {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{spec!r}: {module_name} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]
