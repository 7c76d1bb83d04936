"""The role router's implementation: role settings, their pools and :class:`RoleLLM`.

Each role has settings (set, environment, default), a provider pool its calls go through,
and a :class:`RoleLLM`, the handle that calls it.

One module: the settings and the pools they start share one lock and one table (a change of
settings restarts the role's pool). The text and JSON helpers built on it are in
:mod:`limelight._llm_json`; the public names in :mod:`limelight.roles`.
"""

from __future__ import annotations

import atexit
import contextlib
import difflib
import math
import os
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import anyio.to_thread
import msgspec

from ._usage import current_usage_run
from .actors._provider_worker import (
    DEFAULT_POOL_SIZE,
    USAGE_RUN_KEY,
    ProviderPool,
    is_retryable_provider_error,
    limiter_hook,
)
from .errors import ActorCrashed, ConfigError, RuntimeNotRunning
from .providers import Provider
from .runtime import RetryPolicy, Runtime, current_runtime
from .schemas import CompletionRequest, CompletionResult, Message

if TYPE_CHECKING:
    from .actors import RateLimitHook
    from .runtime import ActorRef, BackgroundRuntime

T = TypeVar("T")


#: The role whose settings every other role falls back on (the helpers' own default role is
#: ``"executor"``).
DEFAULT_ROLE: Final = "default"
_ENV_PREFIX: Final = "LIMELIGHT_"
_LOCAL: Final = frozenset({"mlx", "transformers"})


class RoleConfig(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The settings of one role; ``None`` means "not set here" (the next source decides).

    :ivar backend: ``"litellm"``, ``"openai-compatible"``, ``"mlx"``, ``"transformers"``,
        ``"sim"``, ``"scripted"`` or a registered one; ``None`` lets the model string decide.
    :ivar model: a model string (``"gpt-4o-mini"``, ``"mlx:/models/qwen"``) or, with
        ``backend``, the backend's model name or path.
    :ivar base_url: the server's API root, for remote backends.
    :ivar api_key: the key, for remote backends; never shown in ``repr`` or logs.
    :ivar device: ``"cpu"``, ``"cuda"``, ``"mps"`` (transformers).
    :ivar max_new_tokens: the answer's length limit of local backends (also used as
        ``max_tokens`` by the others when that is not set).
    :ivar torch_dtype: ``"float32"``, ``"bfloat16"``... (transformers).
    :ivar temperature: sampling temperature of each call unless the call gives one.
    :ivar max_tokens: the answer's length limit of each call unless the call gives one.
    :ivar timeout: seconds for each attempt of a call: its attempt timeout (see
        :mod:`limelight._timeouts`).
    :ivar options: more keyword arguments for the backend's constructor (``mock_response``
        for LiteLLM, ``top_p``, ``seed``, ``responses`` for scripted...).
    :ivar provider: a ready :class:`~limelight.providers.Provider` to use as it is (then
        backend, model and the constructor options are not used); the caller owns it.
    :ivar limiter: a :class:`~limelight.actors.RateLimiter` shared with other callers (its
        reference, or a :class:`~limelight.actors.RateLimitHook` on one): every attempt of
        the role's calls is admitted by it first, as deployment ``role:<role>``. The role's
        pool then runs in the limiter's runtime, which must be running while the role is
        called.
    """

    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    device: str | None = None
    max_new_tokens: int | None = None
    torch_dtype: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    options: dict[str, Any] = {}
    provider: Any = None
    limiter: Any = None

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.provider is not None and not isinstance(self.provider, Provider):
            raise ConfigError(
                f"provider must be a limelight Provider (complete, stream, embed, list_models, "
                f"aclose), got {type(self.provider).__name__}"
            )
        if self.limiter is not None:
            from .actors import RateLimitHook
            from .runtime import ActorRef

            if not isinstance(self.limiter, (ActorRef, RateLimitHook)):
                raise ConfigError(
                    "limiter must be a RateLimiter's reference (await RateLimiter.start(rt)) "
                    f"or a RateLimitHook on one, got {type(self.limiter).__name__}"
                )

    def __repr__(self) -> str:
        fields = {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) not in (None, {})
        }
        if fields.get("api_key") is not None:
            fields["api_key"] = "***"
        return "RoleConfig(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    def merged(self, fallback: RoleConfig) -> RoleConfig:
        """This config, its unset fields taken from ``fallback`` (options merged, ours win)."""
        values = {}
        for name in self.__struct_fields__:
            mine = getattr(self, name)
            values[name] = mine if mine is not None else getattr(fallback, name)
        values["options"] = {**fallback.options, **self.options}
        return RoleConfig(**values)


_FIELDS: Final = tuple(
    f for f in RoleConfig.__struct_fields__ if f not in ("options", "provider", "limiter")
)
_INT_FIELDS: Final = frozenset({"max_new_tokens", "max_tokens"})
_FLOAT_FIELDS: Final = frozenset({"temperature", "timeout"})

#: A role's calls are not retried (its backend may retry on its own, LiteLLM does).
_ROLE_RETRY: Final = RetryPolicy(attempts=1, retry_on=is_retryable_provider_error)

_lock = threading.RLock()
_configs: dict[str, RoleConfig] = {}
_runtime: BackgroundRuntime | None = None


def _env_name(role: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", role).upper()


def _from_env(scope: str) -> RoleConfig:
    """``LIMELIGHT_<FIELD>_<SCOPE>`` (or ``LIMELIGHT_DEFAULT_<FIELD>`` for the default)."""
    values: dict[str, Any] = {}
    for name in _FIELDS:
        if scope == DEFAULT_ROLE:
            key = f"{_ENV_PREFIX}DEFAULT_{name.upper()}"
        else:
            key = f"{_ENV_PREFIX}{name.upper()}_{_env_name(scope)}"
        raw = os.environ.get(key)
        if raw is None or raw == "":
            continue
        try:
            if name in _INT_FIELDS:
                values[name] = int(raw)
            elif name in _FLOAT_FIELDS:
                values[name] = float(raw)
            else:
                values[name] = raw
        except ValueError as exc:
            raise ConfigError(f"environment variable {key}={raw!r} is not a number") from exc
        if name == "backend":
            _check_backend(raw, f"environment variable {key}")
    try:
        return RoleConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"the LIMELIGHT_* environment of role {scope!r}: {exc}") from exc


def _check_role(role: str) -> str:
    if not isinstance(role, str) or not role.strip():
        raise ConfigError(f"a role is a non-empty name such as 'executor', got {role!r}")
    return role.strip()


def _check_backend(backend: object, where: str) -> None:
    """Refuse a backend name no factory is registered under, when it is set rather than at
    the first call. ``where`` says what set it."""
    from .providers._resolve import backend_names

    if not isinstance(backend, str) or not backend.strip():
        raise ConfigError(f"{where}: backend must be a backend's name, got {backend!r}")
    names = backend_names()
    kind = backend.strip().lower()
    if kind in names:
        return
    guess = difflib.get_close_matches(kind.replace("_", "-"), names, n=1)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    raise ConfigError(
        f"{where}: unknown backend {backend!r}; {hint}use one of {', '.join(names)}, or "
        "register yours first with limelight.providers.register_backend()"
    )


def set_role_config(
    role: str,
    *,
    backend: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    device: str | None = None,
    max_new_tokens: int | None = None,
    torch_dtype: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    timeout: float | None = None,
    provider: Provider | None = None,
    limiter: ActorRef | RateLimitHook | None = None,
    **options: Any,
) -> RoleConfig:
    """Set fields of ``role``'s settings (any role name; ``"default"`` is every role's
    fallback). Fields given replace those set before; the others stay. ``options`` are more
    keyword arguments for the backend's constructor. See :class:`RoleConfig`; ``limiter``
    (a shared :class:`~limelight.actors.RateLimiter`) admits every attempt of the role's
    calls (``set_role_config("default", limiter=...)``: of every role's).

    :returns: the role's settings as set now (before the environment and the default).
    :raises ConfigError: a bad value, such as a backend no factory is registered under.
    """
    role = _check_role(role)
    if backend is not None:
        _check_backend(backend, f"set_role_config({role!r})")
    given = RoleConfig(
        backend=backend,
        model=model,
        base_url=base_url,
        api_key=api_key,
        device=device,
        max_new_tokens=max_new_tokens,
        torch_dtype=torch_dtype,
        temperature=temperature,
        max_tokens=max_tokens,
        timeout=timeout,
        provider=provider,
        limiter=limiter,
        options=options,
    )
    with _lock:
        config = given.merged(_configs.get(role, RoleConfig()))
        _configs[role] = config
    return config


def set_role_models(
    executor: str | None = None,
    optimizer: str | None = None,
    metaoptimizer: str | None = None,
    *,
    backend: str | None = None,
    key: str | None = None,
    base_url: str | None = None,
    **roles: str,
) -> None:
    """Set the model of each role named (``executor=``, ``optimizer=``, ``metaoptimizer=``, or
    any other role as a keyword), all on ``backend``, with the API key ``key`` and the server
    ``base_url`` when given. With no model, the backend, key and base_url given become the
    default of every role.

    :param backend: ``"litellm"``, ``"openai-compatible"``, ``"mlx"``... (see
        :class:`RoleConfig`); checked now.
    :param key: the API key for these roles' backend (never shown in ``repr`` or logs).
    :param base_url: the server's API root, for remote backends.
    :raises ConfigError: an unknown backend, a role named like a setting (``api_key=``), or
        a model that is not a string. Nothing is set then.
    """
    settings = set(RoleConfig.__struct_fields__) | {"options"}
    misplaced = sorted(settings & set(roles))
    if misplaced:
        raise ConfigError(
            f"set_role_models() sets models by role; {', '.join(map(repr, misplaced))} "
            f"{'is a setting' if len(misplaced) == 1 else 'are settings'}, not a role: give the "
            "API key as key=, the server as base_url=, and other settings with "
            "set_role_config(role, ...)"
        )
    models = {"executor": executor, "optimizer": optimizer, "metaoptimizer": metaoptimizer}
    models.update(roles)
    named = {_check_role(role): model for role, model in models.items() if model is not None}
    for role, model in named.items():
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(
                f"set_role_models({role}=...) takes a model name such as 'gpt-4o-mini', "
                f"got {model!r}"
            )
    if backend is not None:
        _check_backend(backend, "set_role_models()")
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError("set_role_models(key=...) takes the API key as a non-empty string")
    if not named:
        if backend is not None or key is not None or base_url is not None:
            set_role_config(DEFAULT_ROLE, backend=backend, api_key=key, base_url=base_url)
        return
    for role, model in named.items():
        set_role_config(role, model=model, backend=backend, api_key=key, base_url=base_url)


def clear_role_config(role: str | None = None) -> None:
    """Forget what :func:`set_role_config` set for ``role`` (for every role when ``None``);
    the environment still applies. The role's pool is stopped (closing the provider built for
    it)."""
    with _lock:
        if role is None:
            _configs.clear()
            stale = list(_pools.values())
            _pools.clear()
        else:
            role = _check_role(role)
            _configs.pop(role, None)
            entry = _pools.pop(role, None)
            stale = [entry] if entry is not None else []
            if role == DEFAULT_ROLE:  # every role may have built on the default
                stale += list(_pools.values())
                _pools.clear()
    for entry in stale:
        entry.stop_blocking()


def get_role_config(role: str) -> RoleConfig:
    """The settings ``role`` calls with now: its own, the environment's, the default's."""
    role = _check_role(role)
    with _lock:
        own = _configs.get(role, RoleConfig())
        default = _configs.get(DEFAULT_ROLE, RoleConfig())
    config = own.merged(_from_env(role)) if role != DEFAULT_ROLE else own
    return config.merged(default).merged(_from_env(DEFAULT_ROLE))


def get_llm(role: str = "executor") -> RoleLLM:
    """A handle calling ``role``'s model: ``llm(messages=[...])`` from sync code,
    ``await llm.acall(messages=[...])`` from async code (asyncio or trio). The handle follows
    the router: settings changed later apply to its next call."""
    return RoleLLM(_check_role(role))


# --------------------------------------------------------------------------------------
# Building providers


def _backend_kind(config: RoleConfig) -> str:
    """The canonical name of the backend ``config`` resolves to, by the resolver's rules."""
    from .providers._resolve import backend_names, canonical_backend

    if config.provider is not None:
        name = str(getattr(config.provider, "name", ""))
        return canonical_backend(name)
    if config.backend:
        kind = config.backend.strip().lower()
    else:
        model = (config.model or "").strip()
        prefix, colon, _ = model.partition(":")
        if colon and prefix in backend_names():
            kind = prefix
        elif model in ("scripted", "sim"):
            kind = model
        else:
            kind = "openai-compatible" if config.base_url else "litellm"
    return canonical_backend(kind)


def _build(role: str, config: RoleConfig) -> tuple[Provider, str]:
    """A new provider for ``config`` and the model name requests carry."""
    from .providers._resolve import resolve, resolve_backend

    if config.model is None and config.backend not in ("scripted", "sim"):
        env = _env_name(role)
        raise ConfigError(
            f"role {role!r} has no model: set_role_config({role!r}, model=...), "
            f"set_role_models({role}=...) or LIMELIGHT_MODEL_{env} (LIMELIGHT_DEFAULT_MODEL "
            "for every role)"
        )
    options: dict[str, Any] = dict(config.options)
    for name in ("device", "torch_dtype"):
        value = getattr(config, name)
        if value is not None:
            options[name] = value
    if config.max_new_tokens is not None and _backend_kind(config) in _LOCAL:
        options["max_new_tokens"] = config.max_new_tokens
    model = config.model or ""
    if config.backend:
        resolved = resolve_backend(
            config.backend, model, base_url=config.base_url, api_key=config.api_key, **options
        )
    else:
        resolved = resolve(model, base_url=config.base_url, api_key=config.api_key, **options)
    return resolved.provider, resolved.model


def _shared_runtime() -> BackgroundRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            from .runtime import BackgroundRuntime

            _runtime = BackgroundRuntime("limelight-roles")
            atexit.register(_shutdown)
        return _runtime


def _shutdown() -> None:
    """Stop the shared runtime, and with it the pools on it (closing the providers built for
    them), at exit."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is None:
        return
    with contextlib.suppress(RuntimeNotRunning):
        shared = runtime.blocking.runtime
        with _lock:
            for role in [r for r, e in _pools.items() if e.host is shared]:
                del _pools[role]
    runtime.stop()


# --------------------------------------------------------------------------------------
# The roles' pools


class _RolePool:
    """A role's pool, the settings it was started for, and the runtime it runs in."""

    __slots__ = ("config", "host", "pool", "thread")

    def __init__(self, config: RoleConfig, pool: ProviderPool, host: Runtime) -> None:
        self.config = config
        self.pool = pool
        self.host = host
        #: The thread of the host's event loop (made on it).
        self.thread = threading.get_ident()

    def serves(self, config: RoleConfig, host: Runtime) -> bool:
        return self.config == config and self.host is host and self.pool.supervisor.alive

    def stop_blocking(self) -> None:
        """Stop the pool from a thread that is not its loop's (if its runtime still runs:
        else the pool stopped with it)."""
        with contextlib.suppress(RuntimeNotRunning, RuntimeError):
            self.host.blocking.call(self.pool.stop)

    async def stop(self) -> None:
        """Stop the pool, from the event loop of any runtime."""
        if threading.get_ident() == self.thread:
            await self.pool.stop()
        else:
            await anyio.to_thread.run_sync(self.stop_blocking)


#: Each role's pool, started on first call in its runtime and kept until its settings
#: change.
_pools: dict[str, _RolePool] = {}
#: Serializes pool starts per runtime (each lock lives in its runtime's event loop).
_starting: dict[Runtime, anyio.Lock] = {}


def _host(config: RoleConfig) -> Runtime:
    """The runtime a role with ``config`` has its pool in: its limiter's, or the shared
    background runtime."""
    if config.limiter is not None:
        return limiter_hook(config.limiter)[1]
    return _shared_runtime().blocking.runtime


async def _pool_for(role: str, config: RoleConfig, host: Runtime) -> ProviderPool:
    """The role's pool, started now if its settings changed since (it fills in the model name
    of the requests). Runs on ``host``'s event loop."""
    entry = _pools.get(role)
    if entry is not None and entry.serves(config, host):
        return entry.pool
    with _lock:
        lock = _starting.get(host)
        if lock is None or not host.running:
            for stopped in [r for r in _starting if not r.running]:
                del _starting[stopped]
            lock = _starting[host] = anyio.Lock()
    async with lock:
        entry = _pools.get(role)
        if entry is not None and entry.serves(config, host):
            return entry.pool
        if config.provider is not None:
            provider, model, owned = config.provider, config.model or "", False
        else:
            # Building may load a local model or import LiteLLM: not on the event loop.
            provider, model = await anyio.to_thread.run_sync(_build, role, config)
            owned = True
        hooks = () if config.limiter is None else (limiter_hook(config.limiter)[0],)
        pool = await ProviderPool.start(
            host,
            provider,
            name=host.auto_name("role"),
            deployment=f"role:{role}",
            model=model,
            size=DEFAULT_POOL_SIZE,
            retry=_ROLE_RETRY,
            # RoleConfig.timeout (the requests' attempt_timeout) bounds an attempt; none means
            # no bound.
            attempt_timeout=math.inf,
            hooks=hooks,
            close_provider=owned,
        )
        with _lock:
            stale = _pools.get(role)
            _pools[role] = _RolePool(config, pool, host)
    if stale is not None:
        await stale.stop()
    return pool


async def _complete(
    role: str, config: RoleConfig, host: Runtime, request: CompletionRequest
) -> CompletionResult:
    """One call of ``role`` through its pool, on ``host``'s event loop."""
    pool = await _pool_for(role, config, host)
    try:
        return await pool.complete(request)
    except ActorCrashed as exc:
        # The backend raised something else than a ProviderError, which crashed the worker
        # (it restarts): the caller gets the backend's own error, as from a direct call.
        if isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise


class _Hop:
    """A call awaited on another event loop: the scope it runs in there, and whether its
    caller has left (thread-safe: the two loops run in two threads)."""

    __slots__ = ("cancelled", "lock", "scope")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None

    def enter(self, scope: anyio.CancelScope) -> bool:
        with self.lock:
            self.scope = scope
            return not self.cancelled

    def leave(self) -> anyio.CancelScope | None:
        with self.lock:
            self.cancelled = True
            return self.scope


class _Expired(Exception):
    """The caller's deadline passed while its call ran on the other loop."""


async def _across(host: Runtime, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``await func(*args)`` on ``host``'s event loop, from async code on another loop (or
    outside the runtime): a worker thread waits for it, and the caller's deadline and
    cancellation reach it there."""
    deadline = anyio.current_effective_deadline()
    left = None if deadline == math.inf else max(0.0, deadline - anyio.current_time())
    hop = _Hop()
    blocking = host.blocking

    async def there() -> T:
        with anyio.CancelScope() as scope:
            if left is not None:
                scope.deadline = anyio.current_time() + left
            if not hop.enter(scope):
                scope.cancel()
            return await func(*args)
        raise _Expired

    try:
        return await anyio.to_thread.run_sync(blocking.call, there, abandon_on_cancel=True)
    except _Expired:
        # Our own deadline is due too: wait for it, so that it is our scope that ends the call.
        await anyio.sleep(max(0.0, deadline - anyio.current_time()))
        raise
    except BaseException:
        scope = hop.leave()
        if scope is not None:
            with contextlib.suppress(RuntimeNotRunning, RuntimeError):
                blocking.call(scope.cancel)
        raise


# --------------------------------------------------------------------------------------
# The handle


def _messages(messages: Any, prompt: str | None) -> list[Message]:
    out: list[Message] = []
    if messages is not None:
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise ConfigError(
                "messages must be a list of chat messages such as "
                f"[{{'role': 'user', 'content': 'Hi'}}], got {type(messages).__name__}"
            )
        for i, message in enumerate(messages):
            if isinstance(message, Message):
                out.append(message)
                continue
            if not isinstance(message, Mapping):
                raise ConfigError(f"messages[{i}] must be a dict or a Message, got {message!r:.80}")
            try:
                out.append(msgspec.convert(message, Message))
            except msgspec.ValidationError as exc:
                raise ConfigError(f"messages[{i}] is not a chat message: {exc}") from exc
    if prompt is not None:
        out.append(Message.user(prompt))
    if not out:
        raise ConfigError("give messages=[...] or prompt=...: there is nothing to answer")
    return out


class RoleLLM:
    """A role's model, called as ``llm(messages=[...])`` (blocking) or
    ``await llm.acall(messages=[...])``; both return a
    :class:`~limelight.schemas.CompletionResult` and count its usage under the role.

    Both go through the role's :class:`~limelight.actors.ProviderPool`, whose provider is
    built once and kept (until the role's settings change). The pool runs on a background
    event loop shared by all roles, or in the runtime of the role's ``limiter``; any thread
    may call, and async calls (asyncio or trio) wait for the answer without blocking their
    event loop, their deadline and cancellation reaching the call. A ``provider=`` given in
    the role's settings is used as it is (and never closed: the caller owns it).
    """

    __slots__ = ("role",)

    def __init__(self, role: str) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"RoleLLM(role={self.role!r})"

    @property
    def config(self) -> RoleConfig:
        """The settings the next call uses."""
        return get_role_config(self.role)

    @property
    def backend(self) -> str:
        """The kind of backend the next call goes to (``"litellm"``, ``"mlx"``...)."""
        return _backend_kind(self.config)

    def _request(
        self,
        config: RoleConfig,
        messages: Any,
        prompt: str | None,
        temperature: float | None,
        max_tokens: int | None,
        response_format: dict[str, Any] | None,
        extra: dict[str, Any],
    ) -> CompletionRequest:
        """The call's request, naming no model (the role's pool fills it in). Its metadata
        carries the role and the caller's usage run, under which the pool counts it."""
        limit = max_tokens or config.max_tokens or config.max_new_tokens
        fields: dict[str, Any] = {}
        for name in ("top_p", "stop", "seed", "tools", "tool_choice", "metadata"):
            if name in extra:
                fields[name] = extra.pop(name)
        # A call's ``timeout``, like the role's, is its attempt timeout (limelight._timeouts).
        fields["attempt_timeout"] = extra.pop("timeout") if "timeout" in extra else config.timeout
        metadata = {"role": self.role, **fields.pop("metadata", {})}
        run = current_usage_run.get()
        if run is not None:
            metadata[USAGE_RUN_KEY] = run
        try:
            return CompletionRequest(
                messages=_messages(messages, prompt),
                temperature=temperature if temperature is not None else config.temperature,
                max_tokens=limit,
                response_format=response_format,
                metadata=metadata,
                extra=extra,
                **fields,
            )
        except (TypeError, msgspec.ValidationError) as exc:
            raise ConfigError(f"a call of role {self.role!r}: {exc}") from exc

    def __call__(
        self,
        messages: Sequence[Mapping[str, Any] | Message] | None = None,
        *,
        prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: dict[str, Any] | None = None,
        **extra: Any,
    ) -> CompletionResult:
        """Ask the role's model (blocking). Don't call it from inside an event loop: use
        :meth:`acall` there.

        :param messages: chat messages (dicts with ``role`` and ``content``, or Messages).
        :param prompt: a user message appended to ``messages``.
        :param temperature: overrides the role's.
        :param max_tokens: overrides the role's.
        :param response_format: OpenAI's ``response_format`` (JSON output).
        :param extra: ``top_p``, ``stop``, ``seed``, ``tools``, ``tool_choice``,
            ``metadata``, ``timeout``, or body fields passed to the backend as they are.
        :raises ProviderError: the backend failed (a subclass says how).
        """
        config = self.config
        request = self._request(
            config, messages, prompt, temperature, max_tokens, response_format, extra
        )
        host = _host(config)
        result: CompletionResult = host.blocking.call(_complete, self.role, config, host, request)
        return result

    async def acall(
        self,
        messages: Sequence[Mapping[str, Any] | Message] | None = None,
        *,
        prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: dict[str, Any] | None = None,
        **extra: Any,
    ) -> CompletionResult:
        """:meth:`__call__` for async code (asyncio or trio); the caller's deadline and
        cancellation reach the call."""
        config = self.config
        request = self._request(
            config, messages, prompt, temperature, max_tokens, response_format, extra
        )
        host = _host(config)
        if current_runtime() is host:
            return await _complete(self.role, config, host, request)
        return await _across(host, _complete, self.role, config, host, request)
