"""The role router's text and JSON helpers, ``llm_text`` and ``llm_json``.

Both (sync and async) go through a role's :class:`~limelight._roles.RoleLLM`, with
JSON-schema output validated and re-asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._jsonout import JSONSpec, extract_text, try_parse_json
from ._roles import get_llm
from .errors import ConfigError, JSONOutputError
from .providers import takes_json_schema
from .schemas import CompletionResult, Message

#: Backends that turn ``response_format`` into what their model needs (natively, or by an
#: instruction in the prompt for the local ones); for others llm_json adds the instruction.


def llm_text(
    prompt: str | Sequence[Mapping[str, Any] | Message],
    *,
    role: str = "executor",
    system: str | None = None,
    **kwargs: Any,
) -> str:
    """Ask ``role``'s model and return its answer's text.

    :param prompt: the user's message, or a whole list of chat messages.
    :param system: a system message put first.
    :param kwargs: passed to the call (``temperature``, ``max_tokens``, ``seed``...).
    """
    return extract_text(get_llm(role)(_as_messages(prompt, system), **kwargs))


async def allm_text(
    prompt: str | Sequence[Mapping[str, Any] | Message],
    *,
    role: str = "executor",
    system: str | None = None,
    **kwargs: Any,
) -> str:
    """:func:`llm_text` for async code."""
    return extract_text(await get_llm(role).acall(_as_messages(prompt, system), **kwargs))


def _as_messages(prompt: object, system: str | None) -> list[Any]:
    messages: list[Any] = [Message.system(system)] if system is not None else []
    if isinstance(prompt, str):
        messages.append(Message.user(prompt))
    elif isinstance(prompt, Sequence) and not isinstance(prompt, bytes):
        messages.extend(prompt)
    else:
        raise ConfigError(
            f"prompt must be a str or a list of chat messages, got {type(prompt).__name__}"
        )
    return messages


#: The fields of OpenAI's ``json_schema`` object (``response_format["json_schema"]``).
_SCHEMA_OBJECT_FIELDS: Final = frozenset({"name", "schema", "strict", "description"})


def _unwrap_schema(
    json_schema: Any, schema_name: str | None
) -> tuple[Any, str | None, dict[str, Any]]:
    """The schema, its name and the other fields for ``response_format`` (``strict``,
    ``description``), from what llm_json was given: a JSON schema or a type (as it is),
    OpenAI's ``json_schema`` object (``{"name": ..., "schema": {...}, "strict": ...}``) or
    a whole ``response_format`` (``{"type": "json_schema", "json_schema": {...}}``).

    :raises ConfigError: a shape llm_json cannot use: such an object without ``schema``,
        mixed with schema keywords, or with fields of the wrong type.
    """
    if not isinstance(json_schema, Mapping):
        return json_schema, schema_name, {}
    usage = (
        "give the JSON schema itself ({'type': 'object', ...}), or OpenAI's json_schema object "
        "{'name': 'person', 'schema': {'type': 'object', ...}, 'strict': True}"
    )
    given = json_schema
    if given.get("type") == "json_schema" and "json_schema" in given:
        extra = sorted(set(given) - {"type", "json_schema"})
        inner = given["json_schema"]
        if extra or not isinstance(inner, Mapping):
            what = (
                f"also has {', '.join(map(repr, extra))}"
                if extra
                else f"its 'json_schema' is {inner!r:.80}, not an object"
            )
            raise ConfigError(
                "json_schema looks like a whole response_format ({'type': 'json_schema', "
                f"'json_schema': {{...}}}}) but {what}: {usage}"
            )
        given = inner
    elif "schema" not in given and not (
        set(given) <= _SCHEMA_OBJECT_FIELDS and ("name" in given or "strict" in given)
    ):
        # A JSON schema ("schema", "name" and "strict" are none of its keywords; "$schema" is).
        return json_schema, schema_name, {}
    keys = set(given)
    if keys - _SCHEMA_OBJECT_FIELDS:
        raise ConfigError(
            f"json_schema mixes the fields of OpenAI's json_schema object (name, schema, strict) "
            f"with {', '.join(map(repr, sorted(keys - _SCHEMA_OBJECT_FIELDS)))}: {usage}"
        )
    if not isinstance(given.get("schema"), Mapping):
        found = "no 'schema'" if "schema" not in given else f"a 'schema' of {given['schema']!r:.80}"
        raise ConfigError(
            f"json_schema looks like OpenAI's json_schema object but has {found} (a JSON "
            f"schema object is needed there): {usage}"
        )
    name = given.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"json_schema's 'name' must be a string, got {name!r}")
    if schema_name is not None and name is not None and schema_name != name:
        raise ConfigError(
            f"schema_name={schema_name!r} and json_schema's 'name' {name!r} differ: give one"
        )
    fields: dict[str, Any] = {}
    if "strict" in given:
        if not isinstance(given["strict"], bool):
            raise ConfigError(
                f"json_schema's 'strict' must be True or False, got {given['strict']!r}"
            )
        fields["strict"] = given["strict"]
    if "description" in given:
        if not isinstance(given["description"], str):
            raise ConfigError(
                f"json_schema's 'description' must be a string, got {given['description']!r:.80}"
            )
        fields["description"] = given["description"]
    return dict(given["schema"]), schema_name or name, fields


class _JSONAsk:
    """The state of one llm_json: the conversation so far, and what each answer must be."""

    def __init__(
        self,
        prompt: str | Sequence[Mapping[str, Any] | Message],
        json_schema: Any,
        schema_name: str | None,
        system: str | None,
        max_attempts: int,
        schema_in_prompt: bool | None,
        backend: str,
    ) -> None:
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        schema, name, self.fields = _unwrap_schema(json_schema, schema_name)
        self.spec = JSONSpec(schema, name)
        self.max_attempts = max_attempts
        self.messages = _as_messages(prompt, system)
        if schema_in_prompt is None:
            schema_in_prompt = not takes_json_schema(backend)
        if schema_in_prompt:
            self.messages.append(Message.user(self.spec.instruction()))
        self.text = ""
        self.reason = ""

    def response_format(self) -> dict[str, Any]:
        """OpenAI's ``response_format`` for the schema, with ``strict`` and ``description``
        when the caller gave them."""
        response_format = self.spec.response_format()
        if self.fields and "json_schema" in response_format:
            response_format["json_schema"].update(self.fields)
        return response_format

    def check(self, result: CompletionResult) -> tuple[bool, Any]:
        """``(True, value)`` for a valid answer; else the re-ask is appended."""
        self.text = extract_text(result)
        value = try_parse_json(self.text)
        if value is None and self.text.strip() != "null":
            self.reason = "the answer holds no JSON value"
        else:
            try:
                return True, self.spec.validate(value)
            except ValueError as exc:
                self.reason = f"the JSON does not match the schema: {exc}"
        self.messages += [
            Message.assistant(self.text),
            Message.user(
                f"That answer was not valid: {self.reason}. Answer again with only the JSON "
                "value, valid against the schema."
            ),
        ]
        return False, None

    def error(self, role: str) -> JSONOutputError:
        return JSONOutputError(
            f"role {role!r} gave no valid JSON in {self.max_attempts} attempt"
            f"{'s' if self.max_attempts > 1 else ''}; the last one: {self.reason}. "
            f"Answer: {self.text[:200]!r}",
            attempts=self.max_attempts,
            text=self.text,
            reason=self.reason,
        )


def llm_json(
    prompt: str | Sequence[Mapping[str, Any] | Message],
    json_schema: Any = None,
    *,
    role: str = "executor",
    system: str | None = None,
    max_attempts: int = 3,
    schema_name: str | None = None,
    schema_in_prompt: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Ask ``role``'s model for JSON and return the parsed value, valid against
    ``json_schema``.

    The schema goes as ``response_format`` (native structured output on LiteLLM and
    OpenAI-compatible servers; an instruction in the prompt on MLX and transformers), and in
    the prompt for other backends. An answer with no JSON, or JSON not matching, is sent back
    with what was wrong, up to ``max_attempts`` answers in all.

    :param json_schema: a JSON schema (a dict); OpenAI's ``json_schema`` object
        (``{"name": ..., "schema": {...}, "strict": ...}``, or a whole ``response_format``
        holding one), whose ``schema`` is then the schema; or a type (a msgspec Struct, a
        dataclass, a TypedDict...): the value is then converted to it. ``None`` accepts any
        JSON value.
    :param schema_name: the schema's name in ``response_format``.
    :param schema_in_prompt: put the schema in the prompt too (``None``: when the backend
        does not understand ``response_format``; say ``True`` for a server that ignores it).
    :param kwargs: passed to each call (``temperature``, ``max_tokens``...).
    :raises JSONOutputError: no valid JSON after ``max_attempts`` answers.
    :raises ConfigError: a bad schema or argument.
    """
    llm = get_llm(role)
    ask = _JSONAsk(
        prompt, json_schema, schema_name, system, max_attempts, schema_in_prompt, llm.backend
    )
    for _ in range(max_attempts):
        result = llm(ask.messages, response_format=ask.response_format(), **kwargs)
        ok, value = ask.check(result)
        if ok:
            return value
    raise ask.error(role)


async def allm_json(
    prompt: str | Sequence[Mapping[str, Any] | Message],
    json_schema: Any = None,
    *,
    role: str = "executor",
    system: str | None = None,
    max_attempts: int = 3,
    schema_name: str | None = None,
    schema_in_prompt: bool | None = None,
    **kwargs: Any,
) -> Any:
    """:func:`llm_json` for async code."""
    llm = get_llm(role)
    ask = _JSONAsk(
        prompt, json_schema, schema_name, system, max_attempts, schema_in_prompt, llm.backend
    )
    for _ in range(max_attempts):
        result = await llm.acall(ask.messages, response_format=ask.response_format(), **kwargs)
        ok, value = ask.check(result)
        if ok:
            return value
    raise ask.error(role)
