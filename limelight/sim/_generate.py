"""What the simulated model says, deterministically.

It makes pseudo-text, token estimates, embeddings, and tool-call arguments that fit a JSON
schema."""

from __future__ import annotations

import hashlib
import math
import random
import sys
from collections.abc import Mapping
from typing import Any, TypeGuard

import msgspec

from ..schemas import (
    CompletionRequest,
)
from ._config import CHARS_PER_TOKEN, MAX_SCHEMA_DEPTH

_SYLLABLES = (
    "ka", "lo", "mi", "ren", "tas", "vo", "shi", "nu",
    "pe", "dra", "li", "om", "qua", "zel", "fi", "ther",
)  # fmt: skip
#: 256 pseudo-words; answers are drawn from these.
_WORDS = tuple(a + b for a in _SYLLABLES for b in _SYLLABLES)


def estimate_tokens(text: str | None) -> int:
    """Tokens in ``text`` by the documented estimate: characters / 4, rounded up."""
    if not text:
        return 0
    return -(-len(text) // CHARS_PER_TOKEN)


_tools_encoder = msgspec.json.Encoder()


def estimate_prompt_tokens(request: CompletionRequest) -> int:
    """Prompt tokens of a request, deterministically: for each message, the estimate of its
    content, name and tool calls, at least 1; plus the estimate of the tools' JSON. A text
    completion counts its prompt, at least 1."""
    if not request.messages:
        return max(1, estimate_tokens(request.prompt))
    total = 0
    for message in request.messages:
        count = estimate_tokens(message.content) + estimate_tokens(message.name)
        for call in message.tool_calls:
            count += estimate_tokens(call.name) + estimate_tokens(call.arguments)
        total += max(1, count)
    if request.tools:
        total += estimate_tokens(_tools_encoder.encode(request.tools).decode())
    return total


def embed_text(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on ``text`` and ``dimensions`` (a hash of the text
    seeds Gaussian components): equal texts embed equally, different ones almost never."""
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    rng = random.Random(digest)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


# Tokens as streamed: each word with its leading space; one in ten ends a sentence.
_TOKENS = tuple(" " + w for w in _WORDS) * 9 + tuple(" " + w + "." for w in _WORDS)


def words(rng: random.Random, count: int) -> list[str]:
    """``count`` tokens of pseudo-text: words with a leading space (none on the first), a
    sentence ending now and then, and at the end."""
    tokens = rng.choices(_TOKENS, k=count)
    if tokens:
        tokens[0] = tokens[0][1:]
        if not tokens[-1].endswith("."):
            tokens[-1] += "."
    return tokens


# Words are ASCII letters: a generated string's JSON is its length plus two quotes.
_WORD_CHARS = max(len(w) for w in _WORDS)
# Longest JSON of a float (``-1.7976931348623157e+308`` is 24 characters), with room to spare.
_NUMBER_CHARS = 32
_arguments_encoder = msgspec.json.Encoder()


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(schema: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """A non-negative integer keyword (``minLength``, ``maxItems``...), checked beforehand."""
    value = schema.get(key)
    return int(value) if is_number(value) else default


def _kind_of(schema: Mapping[str, Any]) -> object:
    """The JSON type a value for ``schema`` is generated as."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if kinds else "null"
    if kind is None and "properties" in schema:
        kind = "object"
    return kind


def _int_range(schema: Mapping[str, Any]) -> tuple[int, int]:
    """The integers to draw from: the schema's bounds (draft 4's boolean ``exclusive*`` too),
    else 0 to 100."""
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    low_excl, high_excl = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    lows, highs = [], []
    if is_number(minimum):
        lows.append(math.floor(minimum) + 1 if low_excl is True else math.ceil(minimum))
    if is_number(low_excl):
        lows.append(math.floor(low_excl) + 1)
    if is_number(maximum):
        highs.append(math.ceil(maximum) - 1 if high_excl is True else math.floor(maximum))
    if is_number(high_excl):
        highs.append(math.ceil(high_excl) - 1)
    high = min(highs) if highs else None
    low = max(lows) if lows else (0 if high is None or high >= 0 else high - 100)
    return low, max(low, low + 100 if high is None else high)


def _number_range(schema: Mapping[str, Any]) -> tuple[float, float]:
    """The numbers to draw from: the schema's bounds, else 0 to 100."""
    lows = [float(v) for k in ("minimum", "exclusiveMinimum") if is_number(v := schema.get(k))]
    highs = [float(v) for k in ("maximum", "exclusiveMaximum") if is_number(v := schema.get(k))]
    high = min(highs) if highs else None
    low = max(lows) if lows else (0.0 if high is None or high >= 0 else high - 100.0)
    return low, min(low + 100.0, sys.float_info.max) if high is None else high


def _array_length(schema: Mapping[str, Any]) -> tuple[int, int]:
    """The lengths to draw from: ``minItems`` (1 by default) to two more, within
    ``maxItems``."""
    most = _count(schema, "maxItems", None)
    fewest = _count(schema, "minItems", 1 if most is None else min(1, most))
    assert fewest is not None
    top = fewest + 2 if most is None else min(most, fewest + 2)
    return fewest, max(fewest, top)


def _value_for(schema: object, rng: random.Random) -> Any:
    """A value valid against a simple JSON schema (types, enums, bounds, nested objects and
    arrays); ``None`` where the schema is beyond that. The schema passed
    :func:`check_request`, so the value's JSON takes at most :func:`size_bound` bytes."""
    return _generate(schema, rng, {}, 0)


def tool_arguments(schema: object, rng: random.Random) -> str:
    """JSON arguments, as a tool call carries them, for a tool whose parameters are ``schema``."""
    return _arguments_encoder.encode(_value_for(schema, rng) or {}).decode()


def _generate(schema: object, rng: random.Random, memo: dict[int, Any], depth: int) -> Any:
    """:func:`_value_for`. ``memo`` keeps what is derived from a part of the schema (by its
    id), so that the items of an array cost their output, not their schema's size again."""
    if not isinstance(schema, Mapping) or depth > MAX_SCHEMA_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    enum_values = schema.get("enum")
    if isinstance(enum_values, list) and enum_values:
        return rng.choice(enum_values)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = memo.get(id(options))
            if usable is None:
                usable = memo[id(options)] = [
                    o for o in options if isinstance(o, Mapping) and o.get("type") != "null"
                ] or options
            return _generate(rng.choice(usable), rng, memo, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        return _generate(all_of[0], rng, memo, depth + 1)
    kind = _kind_of(schema)
    if kind == "string":
        min_length = _count(schema, "minLength", 1)
        assert min_length is not None
        max_length = _count(schema, "maxLength", None)
        text = " ".join(rng.choices(_WORDS, k=rng.randint(1, 3)))
        while len(text) < min_length:
            text += rng.choice(_WORDS)
        return text if max_length is None else text[:max_length]
    if kind == "integer":
        return rng.randint(*_int_range(schema))
    if kind == "number":
        low_f, high_f = _number_range(schema)
        share = rng.random()
        # Weighted this way, the sum cannot overflow whatever the bounds.
        value = round(low_f * (1.0 - share) + high_f * share, 2)
        return min(max(value, low_f), high_f)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        items = schema.get("items", {})
        count = rng.randint(*_array_length(schema))
        return [_generate(items, rng, memo, depth + 1) for _ in range(count)]
    if kind == "object":
        properties = schema.get("properties", {})
        required = memo.get(id(schema))
        if required is None:
            required = memo[id(schema)] = frozenset(schema.get("required", ()))
        result: dict[str, Any] = {}
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                if name in required or rng.random() < 0.5:
                    result[name] = _generate(sub, rng, memo, depth + 1)
        return result
    return None


def size_bound(schema: object, limit: int, depth: int = 0) -> int:
    """The most bytes of JSON :func:`_value_for` can generate for ``schema``, or a number
    above ``limit`` once it is known to be above (so the arithmetic stays small)."""
    if not isinstance(schema, Mapping) or depth > MAX_SCHEMA_DEPTH:
        return len(b"null")
    if "const" in schema:
        return len(_arguments_encoder.encode(schema["const"]))
    enum_values = schema.get("enum")
    if isinstance(enum_values, list) and enum_values:
        return max(len(_arguments_encoder.encode(v)) for v in enum_values)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return max(size_bound(o, limit, depth + 1) for o in options)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        return size_bound(all_of[0], limit, depth + 1)
    kind = _kind_of(schema)
    if kind == "string":
        min_length = _count(schema, "minLength", 1)
        assert min_length is not None
        longest = max(3 * _WORD_CHARS + 2, min_length + _WORD_CHARS - 1)
        max_length = _count(schema, "maxLength", None)
        return 2 + (longest if max_length is None else min(longest, max_length))
    if kind == "integer":
        low, high = _int_range(schema)
        return max(len(str(low)), len(str(high)))
    if kind == "number":
        return _NUMBER_CHARS
    if kind == "boolean":
        return len(b"false")
    if kind == "array":
        _, most = _array_length(schema)
        item = size_bound(schema.get("items", {}), limit, depth + 1)
        return min(2 + most * (item + 1), limit + 1)
    if kind == "object":
        properties = schema.get("properties", {})
        total = 2
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                total += len(_arguments_encoder.encode(name)) + 2
                total += size_bound(sub, limit, depth + 1)
                if total > limit:
                    return limit + 1
        return total
    return len(b"null")
