"""From a model string to the backend that serves it.

Model strings look like ``"gpt-4o-mini"``, ``"mlx:/models/qwen"`` or ``"sim:fast"``. Users
add their own prefixes with :func:`register_backend`."""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeAlias

from ..errors import ConfigError
from ._base import Provider

__all__ = [
    "BackendFactory",
    "Resolved",
    "backend_names",
    "register_backend",
    "resolve",
    "resolve_backend",
    "takes_json_schema",
]

#: Makes a provider from the model string's rest (after ``"prefix:"``) and the options.
BackendFactory: TypeAlias = Callable[[str, dict[str, Any]], Provider]


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """What a model string resolved to.

    :ivar provider: the backend, ready to use (it loads local models on first call).
    :ivar model: the model name to put in requests (the string without its prefix).
    :ivar backend: the backend's canonical name (``"litellm"``, ``"mlx"``...).
    """

    provider: Provider
    model: str
    backend: str


def _checked(cls: Callable[..., Provider], backend: str, **kwargs: Any) -> Provider:
    """``cls(**kwargs)``, with options the backend does not take reported as a ConfigError."""
    parameters = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown:
            accepted = ", ".join(
                name
                for name, p in parameters.items()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            )
            raise ConfigError(
                f"the {backend!r} backend takes no option {', '.join(map(repr, unknown))}; "
                f"it takes: {accepted}"
            )
    return cls(**kwargs)


def _no_remote_options(backend: str, model: str, options: dict[str, Any]) -> None:
    for key in ("base_url", "api_key"):
        if options.get(key) is not None:
            raise ConfigError(
                f"{key} is for remote backends, but {backend}:{model} runs in this process: "
                f"drop {key}, or use 'openai-compatible:{model}' to reach a server"
            )
        options.pop(key, None)


def _rename(options: dict[str, Any], alias: str, name: str) -> None:
    """Role configurations say ``max_new_tokens`` or ``max_tokens`` for either local backend."""
    if alias in options:
        value = options.pop(alias)
        if name in options and options[name] != value:
            raise ConfigError(f"give {name}= or {alias}=, not both with different values")
        options[name] = value


def _litellm(model: str, options: dict[str, Any]) -> Provider:
    from . import _litellm

    if not model:
        raise ConfigError("'litellm:' needs a model after the colon, e.g. 'litellm:gpt-4o-mini'")
    base_url = options.pop("base_url", None)
    if base_url is not None:
        options.setdefault("api_base", base_url)
    if options.get("api_key") is None:
        options.pop("api_key", None)
    return _litellm.LiteLLM(model, **options)


def _openai_compatible(model: str, options: dict[str, Any]) -> Provider:
    from ._openai_compat import OpenAICompatible

    if options.get("base_url") is None:
        raise ConfigError(
            f"'openai-compatible:{model}' needs base_url=, the server's API root "
            "(e.g. 'http://127.0.0.1:8000/v1')"
        )
    return _checked(OpenAICompatible, "openai-compatible", model=model, **options)


def _mlx(model: str, options: dict[str, Any]) -> Provider:
    from ._mlx import MLX

    _no_remote_options("mlx", model, options)
    _rename(options, "max_new_tokens", "max_tokens")
    if not model:
        raise ConfigError("'mlx:' needs a model path or repo after the colon: 'mlx:/path/model'")
    return _checked(MLX, "mlx", model=model, **options)


def _transformers(model: str, options: dict[str, Any]) -> Provider:
    from ._transformers import Transformers

    _no_remote_options("transformers", model, options)
    _rename(options, "max_tokens", "max_new_tokens")
    if not model:
        raise ConfigError("'hf:' needs a model path after the colon: 'hf:/path/model'")
    return _checked(Transformers, "transformers", model=model, **options)


def _sim(model: str, options: dict[str, Any]) -> Provider:
    from ..sim import Simulated, SimulatedConfig

    _no_remote_options("sim", model, options)
    config = options.pop("config", None)
    if config is None:
        if model:
            options.setdefault("models", (model,))
        try:
            config = SimulatedConfig(**options)
        except TypeError as exc:
            raise ConfigError(f"the 'sim' backend: {exc}; see SimulatedConfig") from exc
    elif options:
        raise ConfigError(
            f"the 'sim' backend takes config= or SimulatedConfig fields, not both "
            f"(got config and {', '.join(sorted(options))})"
        )
    return Simulated(config)


def _echo(request: Any) -> str:
    """The scripted default: the last user message, echoed."""
    for message in reversed(request.messages):
        if message.role == "user" and message.content:
            return f"echo: {message.content}"
    return f"echo: {request.prompt or ''}"


def _scripted(model: str, options: dict[str, Any]) -> Provider:
    from ._scripted import Scripted

    _no_remote_options("scripted", model, options)
    responses = options.pop("responses", _echo)
    if model:
        options.setdefault("model", model)
    return _checked(Scripted, "scripted", responses=responses, **options)


@dataclasses.dataclass(frozen=True, slots=True)
class _Backend:
    """A registered backend: its factory, and whether it honours ``response_format`` JSON
    schemas itself (else :func:`~limelight.roles.llm_json` also asks for it in the prompt)."""

    factory: BackendFactory
    native_json: bool = False


_lock = threading.Lock()
#: Canonical backend name → backend. A new provider is a module and one line here.
_BACKENDS: dict[str, _Backend] = {
    "litellm": _Backend(_litellm, native_json=True),
    "openai-compatible": _Backend(_openai_compatible, native_json=True),
    "mlx": _Backend(_mlx, native_json=True),
    "transformers": _Backend(_transformers, native_json=True),
    "sim": _Backend(_sim),
    "scripted": _Backend(_scripted),
}
#: Prefix or alias → canonical backend name.
_NAMES: dict[str, str] = {name: name for name in _BACKENDS}
_NAMES.update({"openai": "openai-compatible", "hf": "transformers", "simulated": "sim"})


def register_backend(
    prefix: str, factory: BackendFactory, *, replace: bool = False, native_json: bool = False
) -> None:
    """Make ``"<prefix>:<rest>"`` model strings (and ``resolve_backend(prefix, ...)``) resolve
    to ``factory(rest, options)``.

    :param prefix: the backend's name, letters, digits, ``-`` and ``_``.
    :param factory: makes the provider; ``options`` holds the keyword arguments given to
        :func:`resolve` (``base_url`` and ``api_key`` among them when given).
    :param replace: allow replacing a backend already registered under ``prefix``.
    :param native_json: the provider honours a request's ``response_format`` JSON schema
        itself, so ``llm_json`` need not repeat the schema in the prompt.
    :raises ConfigError: a bad prefix, or one already taken without ``replace=True``.
    """
    if not prefix or not prefix.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(
            f"backend prefix must be letters, digits, '-' or '_' (such as 'my-llm'), got {prefix!r}"
        )
    if not callable(factory):
        raise ConfigError(f"factory must be callable (rest, options) -> Provider, got {factory!r}")
    with _lock:
        if prefix in _NAMES and not replace:
            raise ConfigError(
                f"a backend named {prefix!r} is already registered; pass replace=True to replace it"
            )
        _BACKENDS[prefix] = _Backend(factory, native_json)
        _NAMES[prefix] = prefix


def takes_json_schema(name: str) -> bool:
    """Whether the backend ``name`` (or an alias) honours ``response_format`` JSON schemas
    itself; False for an unknown name."""
    with _lock:
        backend = _BACKENDS.get(_NAMES.get(name, name))
    return backend is not None and backend.native_json


def canonical_backend(name: str) -> str:
    """The backend ``name`` stands for (``"hf"`` → ``"transformers"``); an unknown name as given."""
    with _lock:
        return _NAMES.get(name, name)


def backend_names() -> list[str]:
    """The names model strings and :func:`resolve_backend` accept, aliases included."""
    with _lock:
        return sorted(_NAMES)


def _build(backend: str, model: str, options: dict[str, Any]) -> Resolved:
    with _lock:
        name = _NAMES.get(backend)
        entry = _BACKENDS.get(name) if name is not None else None
    if name is None or entry is None:
        raise ConfigError(
            f"unknown backend {backend!r}: use one of {', '.join(backend_names())}, "
            "or add yours with register_backend()"
        )
    provider = entry.factory(model, options)
    if not isinstance(provider, Provider):
        raise ConfigError(
            f"the factory of backend {name!r} returned {type(provider).__name__}, which is not a "
            "Provider (complete, stream, embed, list_models, aclose)"
        )
    return Resolved(provider=provider, model=model, backend=name)


def resolve(
    model: str, *, base_url: str | None = None, api_key: str | None = None, **options: Any
) -> Resolved:
    """The backend a model string names.

    ============================== =====================================================
    ``"openai-compatible:<model>"`` :class:`OpenAICompatible` at ``base_url`` (required)
    ``"<model>"`` with base_url      the same
    ``"mlx:<path or repo>"``        :class:`MLX`, a local mlx-lm model
    ``"hf:<path>"``                 :class:`Transformers` (also ``"transformers:<path>"``)
    ``"sim:<model>"``               :class:`Simulated`, in-process (options: SimulatedConfig)
    ``"scripted"``                  :class:`Scripted` (``responses=``; echoes by default)
    ``"litellm:<model>"``           :class:`LiteLLM`
    anything else                   :class:`LiteLLM` (``"gpt-4o-mini"``,
                                    ``"anthropic/claude-3-5-haiku-latest"``...)
    ============================== =====================================================

    A prefix counts only when it is a registered backend name, so ``"ollama/llama3:8b"``
    goes to LiteLLM whole.

    :param base_url: the server's API root, for remote backends.
    :param api_key: the key, for remote backends (never logged).
    :param options: passed on to the backend's constructor (``max_tokens=``, ``device=``...).
    :raises ConfigError: an empty model, an unknown option, a local backend given base_url.
    :raises MissingExtra: the backend's optional dependency is not installed.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(
            f"model must be a non-empty string such as 'gpt-4o-mini' or 'mlx:/path', got {model!r}"
        )
    model = model.strip()
    prefix, colon, rest = model.partition(":")
    with _lock:
        known = prefix in _NAMES
    if base_url is not None:
        options["base_url"] = base_url
    if api_key is not None:
        options["api_key"] = api_key
    if known and colon:
        return _build(prefix, rest, options)
    if known and prefix == model and prefix in ("scripted", "sim"):
        return _build(prefix, "", options)
    if base_url is not None:
        return _build("openai-compatible", model, options)
    return _build("litellm", model, options)


def resolve_backend(
    backend: str,
    model: str = "",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    **options: Any,
) -> Resolved:
    """The provider for an explicit backend name and model (``resolve_backend("mlx",
    "/models/qwen")``), as role configurations give them.

    :param backend: ``"litellm"``, ``"openai-compatible"`` (alias ``"openai"``), ``"mlx"``,
        ``"transformers"`` (alias ``"hf"``), ``"sim"``, ``"scripted"``, or a registered name.
    :raises ConfigError: an unknown backend or option.
    :raises MissingExtra: the backend's optional dependency is not installed.
    """
    if base_url is not None:
        options["base_url"] = base_url
    if api_key is not None:
        options["api_key"] = api_key
    return _build(backend.strip().lower(), model, options)
