"""JSON out of model answers: find a JSON value in a response and validate it.

It finds the text of any response shape, the JSON value in a text (code fences and surrounding
prose allowed), and validation against a JSON schema or a type. Re-exported by
:mod:`limelight.roles`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from .errors import ConfigError, MissingExtra

__all__ = ["JSONSpec", "extract_text", "try_parse_json"]

_FENCE: Final = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)```", re.S)
_decoder: Final = json.JSONDecoder()


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def extract_text(response: Any) -> str:
    """The text of a model's answer, whatever its shape: a ``str``; a
    :class:`~limelight.schemas.CompletionResult` or :class:`~limelight.schemas.Message`
    (``.content``); an OpenAI-shaped chat or text completion, as an object (the sync client's,
    the openai SDK's, LiteLLM's ``ModelResponse``) or a dict (``choices[0].message.content``,
    ``choices[0].text``). An answer with no text (only tool calls) gives ``""``.

    :raises ConfigError: ``response`` has none of these shapes.
    """
    if isinstance(response, str):
        return response
    if isinstance(response, (bytes, bytearray)):
        return bytes(response).decode()
    choices = _field(response, "choices")
    if isinstance(choices, (list, tuple)):
        if not choices:
            return ""
        first = choices[0]
        message = _field(first, "message")
        if message is not None:
            return _content_text(_field(message, "content"))
        text = _field(first, "text")
        if isinstance(text, str):
            return text
        delta = _field(first, "delta")
        if delta is not None:
            return _content_text(_field(delta, "content"))
    if isinstance(response, Mapping) and "content" in response:
        return _content_text(response["content"])
    if not isinstance(response, Mapping) and hasattr(response, "content"):
        return _content_text(response.content)
    raise ConfigError(
        f"cannot find the text of a {type(response).__name__}: give a str, a CompletionResult, "
        "a Message or an OpenAI-shaped completion (choices[0].message.content)"
    )


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(_field(part, "text") or "") for part in content)
    return str(content)


def _parse(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def try_parse_json(text: Any) -> Any | None:
    """The JSON value in a model's answer, ``None`` when there is none.

    Tried in order: the whole text; the content of each code fence (```` ```json ... ``` ````);
    the first object or array in the text that parses, prose around it ignored. (A JSON
    ``null`` also gives ``None``.) ``text`` may also be a response: its text is taken with
    :func:`extract_text`.
    """
    if not isinstance(text, str):
        text = extract_text(text)
    stripped = text.strip()
    if not stripped:
        return None
    ok, value = _parse(stripped)
    if ok:
        return value
    for match in _FENCE.finditer(text):
        ok, value = _parse(match.group(2).strip())
        if ok:
            return value
    # An unclosed fence (the answer was cut after the JSON): drop the opening line.
    if stripped.startswith("```"):
        ok, value = _parse(stripped.split("\n", 1)[-1].rstrip("`").strip())
        if ok:
            return value
    for i, char in enumerate(text):
        if char in "{[":
            try:
                value, _ = _decoder.raw_decode(text, i)
            except ValueError:
                continue
            return value
    return None


class JSONSpec:
    """What JSON an answer must be: a JSON schema (a dict), or a type msgspec can convert to
    (a Struct, a dataclass, a TypedDict, ``list[int]``...), whose JSON schema is then sent.

    :param spec: the schema or the type; ``None`` accepts any JSON value.
    :param name: the schema's name in ``response_format`` (OpenAI wants one).
    """

    def __init__(self, spec: Any, name: str | None = None) -> None:
        self.type: Any = None
        self.schema: dict[str, Any] | None
        if spec is None:
            self.schema = None
        elif isinstance(spec, Mapping):
            self.schema = dict(spec)
            self._check_schema()
        else:
            try:
                self.schema = msgspec.json.schema(spec)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"json_schema must be a JSON schema (a dict) or a type msgspec knows "
                    f"(a Struct, a dataclass, a TypedDict), got {spec!r}: {exc}"
                ) from exc
            self.type = spec
        default = getattr(spec, "__name__", None) if self.type is not None else None
        self.name = re.sub(r"[^A-Za-z0-9_-]", "_", name or default or "answer")[:64]

    def _check_schema(self) -> None:
        validator = _validator_class(self.schema)  # MissingExtra without jsonschema
        from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

        try:
            validator.check_schema(self.schema)
        except SchemaError as exc:
            raise ConfigError(f"json_schema is not a valid JSON schema: {exc.message}") from exc

    def response_format(self) -> dict[str, Any]:
        """OpenAI's ``response_format`` asking for this JSON."""
        if self.schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema}}

    def instruction(self) -> str:
        """The request for this JSON, for the prompt of a backend that ignores
        ``response_format``."""
        if self.schema is None:
            return "Answer with one JSON value only, no prose and no code fences."
        return (
            "Answer with one JSON value only, no prose and no code fences, valid against this "
            f"JSON schema:\n{json.dumps(self.schema, sort_keys=True)}"
        )

    def validate(self, value: Any) -> Any:
        """``value`` checked against the schema (converted to the type, when one was given).

        :raises ValueError: with a message saying what is wrong and where.
        """
        if self.type is not None:
            try:
                return msgspec.convert(value, self.type)
            except msgspec.ValidationError as exc:
                raise ValueError(str(exc)) from exc
        if self.schema is None:
            return value
        validator = _validator_class(self.schema)(self.schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            from jsonschema.exceptions import best_match

            error = best_match(errors)
            where = "/".join(str(p) for p in error.absolute_path) or "the top level"
            raise ValueError(f"{error.message} (at {where})")
        return value


def _validator_class(schema: Any) -> Any:
    try:
        from jsonschema.validators import validator_for  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra(
            "validating JSON against a schema", missing="jsonschema", extra="usage"
        ) from exc
    return validator_for(schema)
