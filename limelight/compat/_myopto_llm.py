"""The earlier role router's handles and call helpers, over limelight's role router.

The handles are ``myopto.utils.llm``'s classes; the helpers ``get_llm``, ``llm_json``,
``llm_text``, ``extract_text`` and ``try_parse_json``.

A handle (``LLM``, ``LiteLLM``, ``CustomLLM``, ``LocalSLM``) resolves its role's settings
with :mod:`limelight.compat._myopto`, writes them as a limelight role's, and calls that role's
:class:`~limelight._roles.RoleLLM`; answers come back as :class:`ChatResponse`, shaped as the
earlier backends' were.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import anyio.to_thread

from .. import _roles
from .._jsonout import extract_text as _extract_text
from .._jsonout import try_parse_json as _try_parse_json
from .._llm_json import llm_json as _llm_json
from .._llm_json import llm_text as _llm_text
from ..errors import ConfigError
from ..schemas import CompletionResult
from ._myopto import (
    _SETTINGS,
    RoleLLMConfig,
    _check,
    _handles,
    _lock,
    _native,
    _norm_role,
    _resolve,
    _stale,
    _write,
)


class _Record(dict[str, Any]):
    """A dict whose keys read as attributes too (``resp.usage.total_tokens``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the answer has no {name!r}") from None


class ChatResponse(_Record):
    """An OpenAI chat completion, read as attributes (``resp.choices[0].message.content``,
    as the earlier LiteLLM and CustomLLM backends' objects) or as a dict
    (``resp["choices"][0]["message"]["content"]``, as the earlier LocalSLM's).

    :ivar result: the :class:`~limelight.schemas.CompletionResult` it was made from
        (latency, cost, provider...).
    """

    __slots__ = ("result",)
    result: CompletionResult

    @classmethod
    def of(cls, result: CompletionResult) -> ChatResponse:
        message = _Record(role="assistant", content=result.content)
        if result.tool_calls:
            message["tool_calls"] = [
                _Record(
                    id=call.id,
                    type="function",
                    function=_Record(name=call.name, arguments=call.arguments),
                )
                for call in result.tool_calls
            ]
        usage = result.usage
        response = cls(
            id=result.id or f"chatcmpl-{uuid.uuid4().hex}",
            object="chat.completion",
            created=int(time.time()),
            model=result.model,
            choices=[_Record(index=0, message=message, finish_reason=result.finish_reason)],
            usage=_Record(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                total_tokens=usage.total_tokens if usage else 0,
            ),
        )
        response.result = result
        return response

    def model_dump(self) -> dict[str, Any]:
        """The answer as plain dicts and lists (as the openai SDK's objects offer it)."""
        plain: dict[str, Any] = json.loads(json.dumps(self))
        return plain


# --------------------------------------------------------------------------------------
# The handles (the earlier backend classes)


class AbstractModel:
    """A role's model, the earlier backends' common base: ``llm(messages=[...])`` returns a
    :class:`ChatResponse`; ``await llm.acall(...)`` is the same from async code.

    Every call goes through the role's limelight provider pool and is counted in
    :mod:`limelight.usage` under the role. A handle follows the role's settings as they
    change; only what it was given (``model=``, ``backend=``...) stays fixed.
    """

    #: The backend a class pins when it is constructed directly (``LiteLLM(...)``).
    BACKEND: ClassVar[str | None] = None

    role: str
    reset_freq: int | None
    _overrides: dict[str, Any]

    def __init__(
        self,
        model: str | None = None,
        reset_freq: int | None = None,
        cache: bool | None = None,
        role: str | None = None,
        **settings: Any,
    ) -> None:
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}() takes no {', '.join(map(repr, unknown))}; it takes "
                f"model, role, reset_freq, cache and {', '.join(_SETTINGS[2:])}"
            )
        given = {"model": model, "reset_freq": reset_freq, "cache": cache, **settings}
        if self.BACKEND is not None and given.get("backend") is None:
            given["backend"] = self.BACKEND
        r = _norm_role(role)
        self._setup(r, _check(given, f"{type(self).__name__}(role={r!r})"))

    @classmethod
    def _routed(cls, role: str, overrides: dict[str, Any]) -> AbstractModel:
        handle = cls.__new__(cls)
        handle._setup(role, overrides)
        return handle

    def _setup(self, role: str, overrides: dict[str, Any]) -> None:
        self.role = role
        self._overrides = overrides
        self.reset_freq = overrides.get("reset_freq")
        digest = hashlib.sha1(repr(sorted(overrides.items())).encode()).hexdigest()[:10]
        #: The limelight role this handle's calls go to (its own when it has overrides).
        self._key = role if not overrides else f"{role}+{digest}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(role={self.role!r}, model={self.model_name!r})"

    @property
    def config(self) -> RoleLLMConfig:
        """The settings the next call uses."""
        return _resolve(self.role, self._overrides)

    @property
    def model_name(self) -> str | None:
        return self.config.model

    @property
    def backend(self) -> str:
        """The earlier backend name the next call goes to (``"LiteLLM"``...)."""
        return self.config.backend

    @property
    def cache(self) -> bool:
        return self.config.cache

    def _prepare(self, kwargs: dict[str, Any], call_tag: str | None = None) -> dict[str, Any]:
        """The call's keyword arguments for limelight: the earlier names mapped, and the role
        and call tag in the metadata (usage is counted under the role)."""
        if "max_new_tokens" in kwargs:
            value = kwargs.pop("max_new_tokens")
            kwargs.setdefault("max_tokens", value)
        tag = kwargs.pop("call_tag", call_tag)
        metadata = {**kwargs.pop("metadata", {}), "role": self.role}
        if tag is not None:
            metadata["call_tag"] = str(tag)
        kwargs["metadata"] = metadata
        return kwargs

    def _target(self) -> tuple[str, dict[str, Any]]:
        return self._key, _native(self.config)

    def __call__(self, messages: Any = None, **kwargs: Any) -> ChatResponse:
        """Ask the model (blocking); ``kwargs`` as the earlier backends took them
        (``temperature``, ``max_tokens`` or ``max_new_tokens``, ``response_format``,
        ``call_tag``...)."""
        key, native = self._target()
        _write(key, native)
        result = _roles.get_llm(key)(messages, **self._prepare(kwargs))
        return ChatResponse.of(result)

    async def acall(self, messages: Any = None, **kwargs: Any) -> ChatResponse:
        """:meth:`__call__` for async code (asyncio or trio)."""
        key, native = self._target()
        if _stale(key, native):
            await anyio.to_thread.run_sync(_write, key, native)
        result = await _roles.get_llm(key).acall(messages, **self._prepare(kwargs))
        return ChatResponse.of(result)


class LLM(AbstractModel):
    """The earlier default backend class: a role's model on the role's backend, else
    ``TRACE_LLM_BACKEND_<ROLE>``, else ``TRACE_DEFAULT_LLM_BACKEND`` (``"LiteLLM"``)."""


class LiteLLM(AbstractModel):
    """A role's model through LiteLLM (model: set, ``TRACE_LLM_MODEL_<ROLE>``,
    ``TRACE_LITELLM_MODEL_<ROLE>``, ``TRACE_LITELLM_MODEL``, ``"gpt-4o"``)."""

    BACKEND = "LiteLLM"


class CustomLLM(AbstractModel):
    """A role's model on an OpenAI-compatible server (``TRACE_CUSTOMLLM_MODEL``,
    ``TRACE_CUSTOMLLM_URL``, ``TRACE_CUSTOMLLM_API_KEY``, each also per role)."""

    BACKEND = "CustomLLM"

    @property
    def base_url(self) -> str | None:
        return self.config.base_url

    @property
    def api_key(self) -> str | None:
        return self.config.api_key


class LocalSLM(AbstractModel):
    """A role's local model: mlx-lm with ``use_mlx=True``, else transformers
    (``TRACE_LOCALSLM_MODEL``, per role too; ``"Qwen/Qwen2-0.5B-Instruct"``)."""

    BACKEND = "LocalSLM"

    @property
    def use_mlx(self) -> bool:
        return self.config.use_mlx

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens


class AutoGenLLM(AbstractModel):
    """The earlier AutoGen backend, which limelight does not offer: constructing one raises
    :class:`~limelight.errors.ConfigError` saying what to use instead."""

    BACKEND = "AutoGen"


_CLASSES: Final[dict[str, type[AbstractModel]]] = {
    "LiteLLM": LiteLLM,
    "CustomLLM": CustomLLM,
    "LocalSLM": LocalSLM,
}


# --------------------------------------------------------------------------------------
# The call helpers


def _handle(llm: object, role: str) -> AbstractModel:
    if llm is None:
        return get_llm(role)
    if not isinstance(llm, AbstractModel):
        raise ConfigError(
            f"llm= takes a model from get_llm() or LLM(...), got {type(llm).__name__}"
        )
    return llm


def llm_json(
    prompt: Any,
    *,
    role: str = "executor",
    system_prompt: str | None = None,
    llm: AbstractModel | None = None,
    json_schema: Mapping[str, Any],
    call_tag: str | None = None,
    **kwargs: Any,
) -> Any:
    """Ask ``role``'s model (or ``llm``) for JSON valid against ``json_schema`` (a JSON schema,
    or OpenAI's ``{"name": ..., "schema": {...}, "strict": ...}``) and return it parsed.

    LiteLLM and CustomLLM get the schema as ``response_format``, LocalSLM in the prompt; an
    invalid answer is sent back with what was wrong (``max_attempts=3`` answers in all).

    :raises ConfigError: ``json_schema`` is not a non-empty dict.
    :raises JSONOutputError: no valid JSON in the answers (a ``ValueError``).
    """
    if not isinstance(json_schema, Mapping) or not json_schema:
        raise ConfigError(f"llm_json needs a non-empty json_schema dict, got {json_schema!r:.80}")
    handle = _handle(llm, role)
    key, native = handle._target()
    _write(key, native)
    options = handle._prepare(kwargs, call_tag)
    return _llm_json(prompt, dict(json_schema), role=key, system=system_prompt, **options)


def llm_text(
    prompt: Any,
    *,
    role: str = "executor",
    system_prompt: str | None = None,
    llm: AbstractModel | None = None,
    call_tag: str | None = None,
    **kwargs: Any,
) -> str:
    """Ask ``role``'s model (or ``llm``) and return its answer's text."""
    handle = _handle(llm, role)
    key, native = handle._target()
    _write(key, native)
    return _llm_text(prompt, role=key, system=system_prompt, **handle._prepare(kwargs, call_tag))


def extract_text(resp: Any) -> str:
    """The text of any answer: a string, an OpenAI-shaped object or dict, a limelight result;
    ``""`` for ``None``, ``str(resp)`` for anything else (as before)."""
    if resp is None:
        return ""
    try:
        return _extract_text(resp)
    except ConfigError:
        return str(resp)


def try_parse_json(text: str) -> Any:
    """The JSON value in ``text`` (code fences and prose around it allowed).

    :raises json.JSONDecodeError: there is none (as before).
    """
    value = _try_parse_json(text)
    if value is None and extract_text(text).strip() != "null":
        raise json.JSONDecodeError("no JSON value found in the text", extract_text(text), 0)
    return value


def get_llm(role: str = "executor", **kwargs: Any) -> AbstractModel:
    """A handle calling ``role``'s model: ``llm(messages=[...])``, or
    ``await llm.acall(messages=[...])`` from async code (asyncio or trio).

    :param kwargs: settings of this handle only (``model=``, ``backend=``...; see
        :func:`set_role_config`); the rest follows the role's settings as they change.
    """
    r = _norm_role(role)
    settings = {k: v for k, v in kwargs.items() if k in _SETTINGS}
    options = {k: v for k, v in kwargs.items() if k not in _SETTINGS}
    overrides = _check(settings, f"get_llm({r!r})")
    if options:
        overrides["options"] = options
    config = _resolve(r, overrides)
    cls = _CLASSES[config.backend]
    if not config.cache:
        return cls._routed(r, overrides)
    # A handle's class names its backend: one per backend the role has had.
    token = f"{config.backend} {sorted(overrides.items())!r}"
    with _lock:
        handle = _handles.get((r, token))
        if handle is None:
            handle = _handles[(r, token)] = cls._routed(r, overrides)
        return handle


# --------------------------------------------------------------------------------------
# Answers
