"""The role router: roles mapped to models and backends, called from sync or async code.

Roles are executor, optimizer, metaoptimizer, or any name. Calls may ask for JSON output,
and usage is counted per role.

::

    from limelight.roles import set_role_models, get_llm, llm_json

    set_role_models(executor="gpt-4o-mini", optimizer="anthropic/claude-3-5-haiku-latest")
    executor = get_llm("executor")
    print(executor(messages=[{"role": "user", "content": "Hi"}]).content)
    plan = llm_json("Plan three steps.", json_schema={"type": "array"}, role="optimizer")

A role's settings come, field by field, from :func:`set_role_config` for that role, then the
environment (``LIMELIGHT_MODEL_EXECUTOR``, ``LIMELIGHT_BACKEND_EXECUTOR``,
``LIMELIGHT_BASE_URL_EXECUTOR``... any field, upper-cased), then :func:`set_role_config` for
the role ``"default"``, then ``LIMELIGHT_DEFAULT_<FIELD>`` (``LIMELIGHT_DEFAULT_BACKEND``,
``LIMELIGHT_DEFAULT_MODEL``...). The model string and backend resolve through
:func:`limelight.providers.resolve` (``"gpt-4o-mini"`` goes to LiteLLM, ``"mlx:/path"`` to
MLX...).

Every call goes through a role's :class:`~limelight.actors.ProviderPool` (the pipeline every
model call takes: attempt hooks, analytics, usage accounting). A role's pool runs on a
background event loop shared by all roles, or, when the role's settings name a shared rate
limiter (``set_role_config(role, limiter=...)``), in that limiter's runtime.
"""

from __future__ import annotations

from ._jsonout import JSONSpec as JSONSpec
from ._jsonout import extract_text as extract_text
from ._jsonout import try_parse_json as try_parse_json
from ._llm_json import allm_json as allm_json
from ._llm_json import allm_text as allm_text
from ._llm_json import llm_json as llm_json
from ._llm_json import llm_text as llm_text
from ._roles import DEFAULT_ROLE as DEFAULT_ROLE
from ._roles import RoleConfig as RoleConfig
from ._roles import RoleLLM as RoleLLM
from ._roles import clear_role_config as clear_role_config
from ._roles import get_llm as get_llm
from ._roles import get_role_config as get_role_config
from ._roles import set_role_config as set_role_config
from ._roles import set_role_models as set_role_models
from .errors import JSONOutputError as JSONOutputError

__all__ = [
    "DEFAULT_ROLE",
    "JSONOutputError",
    "JSONSpec",
    "RoleConfig",
    "RoleLLM",
    "allm_json",
    "allm_text",
    "clear_role_config",
    "extract_text",
    "get_llm",
    "get_role_config",
    "llm_json",
    "llm_text",
    "set_role_config",
    "set_role_models",
    "try_parse_json",
]
