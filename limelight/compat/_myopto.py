"""The earlier role router's API (``myopto.utils``, ``myopto.utils.llm``) over limelight's.

The earlier router kept a settings record per role (backend ``"LiteLLM"``, ``"CustomLLM"`` or
``"LocalSLM"``, model, key, the local model's options) and read ``TRACE_*`` environment
variables for what was not set. Here that record is kept as given, resolved with the same
environment variables and defaults, and written into :mod:`limelight._roles` as the role's
native settings; every call then goes through the role's provider pool (retries, rate
limiting, analytics, usage per role), and answers come back shaped as the earlier backends'
were. The handles, answers and call helpers are in :mod:`limelight.compat._myopto_llm`, the usage
functions in :mod:`limelight.compat._myopto_usage`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import threading
import warnings
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from .. import _roles
from ..errors import ConfigError

#: Whether the local backends' libraries are installed (LocalSLM runs on either).
HAS_MLX: Final = importlib.util.find_spec("mlx_lm") is not None
HAS_TRANSFORMERS: Final = (
    importlib.util.find_spec("transformers") is not None
    and importlib.util.find_spec("torch") is not None
)

DEFAULT_BACKEND: Final = "LiteLLM"
DEFAULT_LITELLM_MODEL: Final = "gpt-4o"
DEFAULT_CUSTOMLLM_MODEL: Final = "gpt-4o"
DEFAULT_CUSTOMLLM_URL: Final = "http://localhost:4000"
DEFAULT_CUSTOMLLM_API_KEY: Final = "sk-placeholder"
DEFAULT_LOCALSLM_MODEL: Final = "Qwen/Qwen2-0.5B-Instruct"
DEFAULT_MAX_NEW_TOKENS: Final = 150
DEFAULT_TORCH_DTYPE: Final = "float16"

_BACKENDS: Final = {
    "litellm": "LiteLLM",
    "customllm": "CustomLLM",
    "localslm": "LocalSLM",
    "autogen": "AutoGen",
}
_SETTINGS: Final = (
    "backend",
    "model",
    "base_url",
    "api_key",
    "reset_freq",
    "cache",
    "use_mlx",
    "device",
    "max_new_tokens",
    "torch_dtype",
)


class RoleLLMConfig(msgspec.Struct, frozen=True):
    """A role's settings, as the earlier ``get_role_config(role)`` returned them: those set,
    then the ``TRACE_*`` environment, then the defaults.

    :ivar options: limelight settings and backend options given as well (``temperature=``,
        ``timeout=``, ``mock_response=``...); see :class:`limelight.roles.RoleConfig`.
    :ivar reset_freq: kept for the earlier API; limelight keeps one pooled backend per role
        (a model is loaded once), so there is nothing to refresh.
    """

    role: str
    backend: str = DEFAULT_BACKEND
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    reset_freq: int | None = None
    cache: bool = True
    use_mlx: bool = False
    device: str | None = None
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    torch_dtype: str = DEFAULT_TORCH_DTYPE
    options: dict[str, Any] = {}

    def __repr__(self) -> str:
        fields = {name: getattr(self, name) for name in self.__struct_fields__}
        if fields["api_key"] is not None:
            fields["api_key"] = "***"
        return "RoleLLMConfig(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"


_lock = threading.RLock()
#: What was set for each role (only the fields given; ``options`` merged).
_given: dict[str, dict[str, Any]] = {}
#: The limelight role names this module wrote settings under (a role's, and its overrides').
_written: set[str] = set()
#: get_llm's handles, by role and overrides (the earlier router's instance cache).
_handles: dict[tuple[str, str], Any] = {}


def _norm_role(role: object) -> str:
    """The earlier router's role names: lower case, with its aliases (``"exec"``, ``"opt"``,
    ``"meta"``...)."""
    if role is None:
        return "executor"
    if not isinstance(role, str) or not role.strip():
        raise ConfigError(f"a role is a non-empty name such as 'executor', got {role!r}")
    r = role.strip().lower()
    if r in {"meta", "meta_optimizer", "meta-optimizer", "metaoptimizer"}:
        return "metaoptimizer"
    if r in {"opt", "optimizer"}:
        return "optimizer"
    if r in {"exec", "executor"}:
        return "executor"
    return r


def _backend_name(value: object, where: str) -> str:
    """The earlier backend name ``value`` stands for (any case)."""
    name = _BACKENDS.get(value.strip().lower()) if isinstance(value, str) else None
    if name is None:
        raise ConfigError(
            f"{where}: unknown backend {value!r}; the role router takes 'LiteLLM', 'CustomLLM' "
            "(an OpenAI-compatible server) or 'LocalSLM' (mlx or transformers); limelight's "
            "other backends are in limelight.roles"
        )
    if name == "AutoGen":
        raise ConfigError(
            f"{where}: the AutoGen backend is not available in limelight: use 'LiteLLM' (every "
            "provider AutoGen reached) or 'CustomLLM' (an OpenAI-compatible server)"
        )
    return name


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _check(given: dict[str, Any], where: str) -> dict[str, Any]:
    """``given`` with its values checked (None values dropped)."""
    out = {k: v for k, v in given.items() if v is not None}
    if "backend" in out:
        out["backend"] = _backend_name(out["backend"], where)
    for name in ("model", "base_url", "api_key", "device", "torch_dtype"):
        if name in out and (not isinstance(out[name], str) or not out[name]):
            raise ConfigError(f"{where}: {name} must be a non-empty string, got {out[name]!r}")
    for name in ("max_new_tokens", "reset_freq"):
        value = out.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{where}: {name} must be an int >= 1, got {value!r}")
    for name in ("use_mlx", "cache"):
        if name in out:
            out[name] = bool(out[name])
    return out


def _resolve(role: str, overrides: Mapping[str, Any]) -> RoleLLMConfig:
    """The settings a call of ``role`` uses: ``overrides``, what was set, the environment
    (``TRACE_*``, read now), the defaults."""
    with _lock:
        stored = dict(_given.get(role, {}))
    options = {**stored.pop("options", {}), **overrides.get("options", {})}
    given = {**stored, **{k: v for k, v in overrides.items() if k != "options"}}
    suffix = re.sub(r"[^A-Za-z0-9]", "_", role).upper()
    raw = given.get("backend") or _env(f"TRACE_LLM_BACKEND_{suffix}", "TRACE_DEFAULT_LLM_BACKEND")
    backend = _backend_name(raw or DEFAULT_BACKEND, f"the backend of role {role!r}")
    model = given.get("model") or _env(f"TRACE_LLM_MODEL_{suffix}")
    base_url, api_key = given.get("base_url"), given.get("api_key")
    if backend == "LiteLLM" and model is None:
        model = _env(f"TRACE_LITELLM_MODEL_{suffix}", "TRACE_LITELLM_MODEL")
        if model is None and _env("DEFAULT_LITELLM_MODEL"):
            warnings.warn(
                "DEFAULT_LITELLM_MODEL is deprecated: use TRACE_LITELLM_MODEL",
                DeprecationWarning,
                stacklevel=4,
            )
            model = _env("DEFAULT_LITELLM_MODEL")
        model = model or DEFAULT_LITELLM_MODEL
    elif backend == "CustomLLM":
        model = model or _env(f"TRACE_CUSTOMLLM_MODEL_{suffix}", "TRACE_CUSTOMLLM_MODEL")
        model = model or DEFAULT_CUSTOMLLM_MODEL
        base_url = base_url or _env(f"TRACE_CUSTOMLLM_URL_{suffix}", "TRACE_CUSTOMLLM_URL")
        base_url = base_url or DEFAULT_CUSTOMLLM_URL
        api_key = api_key or _env(f"TRACE_CUSTOMLLM_API_KEY_{suffix}", "TRACE_CUSTOMLLM_API_KEY")
        api_key = api_key or DEFAULT_CUSTOMLLM_API_KEY
    elif backend == "LocalSLM":
        model = model or _env(f"TRACE_LOCALSLM_MODEL_{suffix}", "TRACE_LOCALSLM_MODEL")
        model = model or DEFAULT_LOCALSLM_MODEL
    return RoleLLMConfig(
        role=role,
        backend=backend,
        model=model,
        base_url=base_url,
        api_key=api_key,
        reset_freq=given.get("reset_freq"),
        cache=given.get("cache", True),
        use_mlx=given.get("use_mlx", False),
        device=given.get("device"),
        max_new_tokens=given.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
        torch_dtype=given.get("torch_dtype", DEFAULT_TORCH_DTYPE),
        options=options,
    )


@functools.cache
def _auto_device() -> str:
    """The earlier LocalSLM's device choice: Apple's GPU, else CUDA, else the CPU."""
    try:
        import torch
    except ImportError:  # the transformers backend names the missing extra when it starts
        return "cpu"
    if torch.backends.mps.is_available():
        return "mps"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _native(config: RoleLLMConfig) -> dict[str, Any]:
    """``config`` as the keyword arguments of :func:`limelight._roles.set_role_config`."""
    if config.backend == "LiteLLM":
        native: dict[str, Any] = {"backend": "litellm", "base_url": config.base_url}
        native["api_key"] = config.api_key
    elif config.backend == "CustomLLM":
        native = {"backend": "openai-compatible", "base_url": config.base_url}
        native["api_key"] = config.api_key
    elif config.use_mlx:
        native = {"backend": "mlx", "max_new_tokens": config.max_new_tokens}
    else:
        native = {
            "backend": "transformers",
            "device": config.device or _auto_device(),
            "torch_dtype": config.torch_dtype,
            "max_new_tokens": config.max_new_tokens,
        }
    native["model"] = config.model
    return {**{k: v for k, v in native.items() if v is not None}, **config.options}


def _expected(native: dict[str, Any]) -> _roles.RoleConfig:
    fields = set(_roles.RoleConfig.__struct_fields__) - {"options"}
    return _roles.RoleConfig(
        **{k: v for k, v in native.items() if k in fields},
        options={k: v for k, v in native.items() if k not in fields},
    )


def _stale(key: str, native: dict[str, Any]) -> bool:
    """Whether limelight's settings for ``key`` differ from ``native``."""
    with _roles._lock:
        current = _roles._configs.get(key)
    return current != _expected(native)


def _write(key: str, native: dict[str, Any]) -> None:
    """Make ``native`` limelight's settings for ``key`` (its pool restarts when they change).
    Blocking: it may stop the role's old pool."""
    with _lock:
        if not _stale(key, native):
            return
        _roles.clear_role_config(key)
        _roles.set_role_config(key, **native)
        _written.add(key)


# --------------------------------------------------------------------------------------
# Configuration


def set_role_config(
    role: str,
    *,
    backend: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    reset_freq: int | None = None,
    cache: bool | None = None,
    use_mlx: bool | None = None,
    device: str | None = None,
    max_new_tokens: int | None = None,
    torch_dtype: str | None = None,
    **options: Any,
) -> None:
    """Set fields of ``role``'s settings (the others stay as they were).

    :param backend: ``"LiteLLM"``, ``"CustomLLM"`` (an OpenAI-compatible server at
        ``base_url``) or ``"LocalSLM"`` (``use_mlx=True``: mlx-lm, else transformers on
        ``device`` with ``torch_dtype``, at most ``max_new_tokens`` per answer).
    :param api_key: sent to the backend; never shown in a repr or a log.
    :param options: more limelight settings (``temperature=``, ``max_tokens=``,
        ``timeout=``) or backend options (``mock_response=`` for LiteLLM...).
    :raises ConfigError: an unknown backend (AutoGen included) or a bad value.
    """
    r = _norm_role(role)
    given = _check(
        {
            "backend": backend,
            "model": model,
            "base_url": base_url,
            "api_key": api_key,
            "reset_freq": reset_freq,
            "cache": cache,
            "use_mlx": use_mlx,
            "device": device,
            "max_new_tokens": max_new_tokens,
            "torch_dtype": torch_dtype,
        },
        f"set_role_config({r!r})",
    )
    with _lock:
        previous = _given.get(r)
        merged = {**(previous or {}), **given}
        merged["options"] = {**(previous or {}).get("options", {}), **options}
        _given[r] = merged
        try:
            _write(r, _native(_resolve(r, {})))
        except BaseException:
            # Nothing is set when the settings cannot be used (a bad option, an unknown
            # backend in the environment).
            if previous is None:
                del _given[r]
            else:
                _given[r] = previous
            raise


def set_role_models(
    *,
    executor: str | None = None,
    optimizer: str | None = None,
    metaoptimizer: str | None = None,
    key: str | None = None,
    backend: str | None = None,
    base_url: str | None = None,
    **roles: str,
) -> None:
    """Set the model of each role named, all on ``backend`` with the API key ``key``.

    :param key: the API key, sent to these roles' backend (never shown in a log).
    :param base_url: the server, for ``"CustomLLM"`` (or a LiteLLM proxy).
    :param roles: more roles, by name (``critic="gpt-4o-mini"``).
    :raises ConfigError: a key, backend or base_url with no model to set it for.
    """
    models = {"executor": executor, "optimizer": optimizer, "metaoptimizer": metaoptimizer}
    models.update(roles)
    named = {_norm_role(r): m for r, m in models.items() if m is not None}
    if not named:
        if key is not None or backend is not None or base_url is not None:
            raise ConfigError(
                "set_role_models() sets models by role: name at least one (executor=...), "
                "or give a role's key with set_role_config(role, api_key=...)"
            )
        return
    for r, m in named.items():
        _check({"model": m, "backend": backend}, f"set_role_models({r}=...)")
    for r, m in named.items():
        set_role_config(r, model=m, backend=backend, api_key=key, base_url=base_url)


def clear_role_config(role: str | None = None) -> None:
    """Forget what was set for ``role`` (every role when ``None``); the ``TRACE_*``
    environment still applies. Stops the role's pools."""
    with _lock:
        if role is None:
            _given.clear()
            keys = set(_written)
            _handles.clear()
        else:
            r = _norm_role(role)
            _given.pop(r, None)
            keys = {k for k in _written if k == r or k.startswith(r + "+")}
            for handle in [h for h in _handles if h[0] == r]:
                del _handles[handle]
        _written.difference_update(keys)
        for key in keys:
            _roles.clear_role_config(key)


def get_role_config(role: str) -> RoleLLMConfig | None:
    """The settings ``role``'s calls use now (environment and defaults applied), or ``None``
    when nothing was set for it."""
    r = _norm_role(role)
    with _lock:
        if r not in _given:
            return None
    return _resolve(r, {})
